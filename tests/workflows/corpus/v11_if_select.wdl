version 1.1

workflow v11_if_select {
  input {
    Array[Int] numbers
    Int threshold = 3
  }
  scatter (n in numbers) {
    if (n > threshold) {
      call square { input: n = n }
    }
  }
  Array[Int] big = select_all(square.result)
  Int? none_here
  output {
    Array[Int] squares = big
    Int first_or_zero = select_first([none_here, if length(big) > 0 then big[0] else 0])
    Int count = length(big)
  }
}

task square {
  input {
    Int n
  }
  command <<<
    echo $(( ~{n} * ~{n} ))
  >>>
  output {
    Int result = read_int(stdout())
  }
}
