version 1.0

struct Sample {
  String name
  Int reads
  Array[String] tags
}

workflow v10_structs {
  input {
    Array[Sample] samples
  }
  scatter (s in samples) {
    call describe { input: sample = s }
  }
  output {
    Array[String] lines = describe.line
    Sample first = samples[0]
  }
}

task describe {
  input {
    Sample sample
  }
  command <<<
    echo "~{sample.name}: ~{sample.reads} reads, tags ~{sep=',' sample.tags}"
  >>>
  output {
    String line = read_string(stdout())
  }
}
