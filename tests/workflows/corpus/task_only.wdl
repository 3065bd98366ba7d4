version 1.1

task task_only {
  input {
    String greeting = "hello"
    Array[String] names
  }
  command <<<
    for n in ~{sep(" ", names)}; do echo "~{greeting}, $n"; done
  >>>
  output {
    Array[String] lines = read_lines(stdout())
  }
}
