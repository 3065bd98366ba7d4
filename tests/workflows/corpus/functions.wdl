version 1.1

workflow functions {
  input {
    Array[String] files = ["/data/a.bam", "/data/b.sorted.bam"]
    Float x = 2.7
  }
  call noop
  output {
    Array[String] names = prefix("sample_", files)
    String base = basename(files[1], ".bam")
    String joined = sep("|", files)
    Int down = floor(x)
    Int up = ceil(x)
    String swapped = sub("a-b-c", "-", "_")
    Boolean has = defined(noop.maybe)
    Int total = length(files) + noop.n
  }
}

task noop {
  command <<<
    echo 4
  >>>
  output {
    Int n = read_int(stdout())
    String? maybe = "yes"
  }
}
