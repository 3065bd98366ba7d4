version 1.0

workflow return_codes {
  call grep_nothing
  output {
    String said = grep_nothing.said
  }
}

task grep_nothing {
  command <<<
    echo "searched"
    printf 'abc\n' | grep -q xyz
  >>>
  output {
    String said = read_string(stdout())
  }
  runtime {
    returnCodes: [0, 1]
  }
}
