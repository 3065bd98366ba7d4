version 1.0

workflow map_pair {
  input {
    Map[String, Int] depth
    Array[String] names = ["a", "b"]
    Array[Int] counts = [1, 2]
  }
  Array[Pair[String, Int]] zipped = zip(names, counts)
  scatter (p in zipped) {
    call join { input: key = p.left, value = p.right }
  }
  output {
    Array[String] joined = join.text
    Int depth_a = depth["a"]
    Int pairs = length(cross(names, counts))
  }
}

task join {
  input {
    String key
    Int value
  }
  command <<<
    echo "~{key}=~{value}"
  >>>
  output {
    String text = read_string(stdout())
  }
}
