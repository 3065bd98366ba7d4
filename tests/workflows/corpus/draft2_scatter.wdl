# draft-2: no version line, ${} placeholders, scatter and a gathered array.
task count_chars {
  String word
  command {
    printf '%s' "${word}" | wc -c
  }
  output {
    Int n = read_int(stdout())
  }
}

workflow draft2_scatter {
  Array[String] words
  scatter (w in words) {
    call count_chars { input: word = w }
  }
  output {
    Array[Int] lengths = count_chars.n
  }
}
