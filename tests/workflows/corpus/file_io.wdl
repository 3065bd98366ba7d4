version 1.0

workflow file_io {
  input {
    File reads
  }
  call upper { input: reads = reads }
  call stats { input: lines = read_lines(upper.out) }
  output {
    File upper_file = upper.out
    Int n = stats.n
    String first = stats.first
  }
}

task upper {
  input {
    File reads
  }
  command <<<
    tr a-z A-Z < "~{reads}" > upper.txt
  >>>
  output {
    File out = "upper.txt"
  }
}

task stats {
  input {
    Array[String] lines
  }
  File listed = write_lines(lines)
  command <<<
    wc -l < "~{listed}"
    head -1 "~{listed}" > first.txt
  >>>
  output {
    Int n = read_int(stdout())
    String first = read_string("first.txt")
  }
}
