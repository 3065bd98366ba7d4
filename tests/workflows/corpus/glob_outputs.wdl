version 1.0

workflow glob_outputs {
  input {
    Int parts = 3
  }
  call split { input: parts = parts }
  output {
    Array[File] chunks = split.chunks
    Int n = length(split.chunks)
  }
}

task split {
  input {
    Int parts
  }
  command <<<
    mkdir -p out
    for i in $(seq 1 ~{parts}); do echo "chunk $i" > out/chunk_$i.txt; done
    echo ignored > out/other.log
  >>>
  output {
    Array[File] chunks = glob("out/chunk_*.txt")
  }
}
