version 1.0

import "../tasks/common.wdl" as common

workflow twice {
  input {
    String word
  }
  call common.shout as first { input: word = word }
  call common.shout as second { input: word = first.loud + " again" }
  output {
    Array[String] both = [first.loud, second.loud]
  }
}
