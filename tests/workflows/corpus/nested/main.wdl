version 1.0

import "lib/sub.wdl" as sub
import "tasks/common.wdl" as common

workflow nested {
  input {
    Array[String] words
  }
  scatter (w in words) {
    call sub.twice { input: word = w }
  }
  call common.shout { input: word = "done" }
  output {
    Array[Array[String]] all = twice.both
    String last = shout.loud
  }
}
