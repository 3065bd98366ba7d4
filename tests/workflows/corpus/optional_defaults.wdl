version 1.0

workflow optional_defaults {
  input {
    String? label
    Int copies = 2
  }
  call repeat { input: text = select_first([label, "default"]), copies = copies }
  output {
    Array[String] lines = repeat.lines
    Boolean labelled = defined(label)
  }
}

task repeat {
  input {
    String text
    Int copies
    String suffix = "!"
  }
  command <<<
    for i in $(seq 1 ~{copies}); do echo "~{text}~{suffix}"; done
  >>>
  output {
    Array[String] lines = read_lines(stdout())
  }
}
