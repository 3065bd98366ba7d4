version 1.0

workflow stdout_file {
  call report
  call count { input: text = report.out }
  output {
    File report_file = report.out
    File errors = report.err
    Int lines = count.n
  }
}

task report {
  command <<<
    printf 'line one\nline two\nline three\n'
    echo "a warning" >&2
  >>>
  output {
    File out = stdout()
    File err = stderr()
  }
}

task count {
  input {
    File text
  }
  command <<<
    wc -l < "~{text}"
  >>>
  output {
    Int n = read_int(stdout())
  }
}
