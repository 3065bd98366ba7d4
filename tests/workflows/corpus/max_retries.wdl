version 1.0

# The first attempt fails; miniwdl keeps a failed attempt's folder beside the next one's
# (work.attempt1), so the second attempt knows it is one and succeeds.
workflow max_retries {
  call flaky
  output {
    String said = flaky.said
  }
}

task flaky {
  command <<<
    if [ -d ../work.attempt1 ] || [ -f attempt.marker ]; then
      echo "second time lucky"
    else
      touch attempt.marker
      echo "transient failure" >&2
      exit 1
    fi
  >>>
  output {
    String said = read_string(stdout())
  }
  runtime {
    maxRetries: 2
  }
}
