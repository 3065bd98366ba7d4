version 1.0

# A small germline variant-calling workflow that runs for real on one machine:
# a synthetic reference, wgsim paired-end reads for each sample (wgsim also prints the
# mutations it planted: the truth set), bwa mem, samtools fixmate/sort/markdup/index,
# bcftools mpileup/call, and a check of the called SNPs against the truth.
# Needs samtools (which ships wgsim), bwa, bcftools and python3 on the PATH.

workflow germline {
  input {
    Array[String] samples = ["sample1", "sample2"]
    Int reference_length = 50000
    Int seed = 7
    Int read_pairs = 20000
    Int read_length = 100
    Float mutation_rate = 0.001
    Int threads = 2
  }

  call make_reference { input: length = reference_length, seed = seed }
  call index_reference { input: fasta = make_reference.fasta }

  scatter (i in range(length(samples))) {
    call simulate_reads {
      input:
        fasta = make_reference.fasta,
        sample = samples[i],
        seed = seed + i + 1,
        read_pairs = read_pairs,
        read_length = read_length,
        mutation_rate = mutation_rate
    }
    call align_markdup {
      input:
        fasta = make_reference.fasta,
        index_files = index_reference.bwa_index,
        sample = samples[i],
        reads1 = simulate_reads.reads1,
        reads2 = simulate_reads.reads2,
        threads = threads
    }
    call call_variants {
      input:
        fasta = make_reference.fasta,
        fai = index_reference.fai,
        sample = samples[i],
        bam = align_markdup.bam,
        bai = align_markdup.bai
    }
    call check_calls {
      input:
        sample = samples[i],
        vcf = call_variants.vcf,
        truth = simulate_reads.truth,
        bam = align_markdup.bam
    }
  }

  call summarize { input: rows = check_calls.row }

  output {
    File reference = make_reference.fasta
    Array[File] bams = align_markdup.bam
    Array[File] bam_indexes = align_markdup.bai
    Array[File] vcfs = call_variants.vcf
    Array[File] truth = simulate_reads.truth
    Array[File] stats = call_variants.stats
    File report = summarize.report
    Float min_recall = summarize.min_recall
  }
}

task make_reference {
  input {
    Int length
    Int seed
  }
  command <<<
    set -euo pipefail
    python3 - <<'PY'
    import random
    rng = random.Random(~{seed})
    seq = "".join(rng.choice("ACGT") for _ in range(~{length}))
    with open("reference.fa", "w") as out:
        out.write(">chrS\n")
        for start in range(0, len(seq), 60):
            out.write(seq[start:start + 60] + "\n")
    PY
  >>>
  output {
    File fasta = "reference.fa"
  }
  runtime {
    cpu: 1
    memory: "256 MB"
  }
}

task index_reference {
  input {
    File fasta
  }
  command <<<
    set -euo pipefail
    cp "~{fasta}" reference.fa
    samtools faidx reference.fa
    bwa index reference.fa 2> bwa_index.log
  >>>
  output {
    File fai = "reference.fa.fai"
    Array[File] bwa_index = [
      "reference.fa.amb", "reference.fa.ann", "reference.fa.bwt",
      "reference.fa.pac", "reference.fa.sa"
    ]
  }
  runtime {
    cpu: 1
    memory: "512 MB"
  }
}

task simulate_reads {
  input {
    File fasta
    String sample
    Int seed
    Int read_pairs
    Int read_length
    Float mutation_rate
  }
  command <<<
    set -euo pipefail
    # stdout lists the planted mutations: chrom, position, ref, alt (IUPAC when het), +/-
    wgsim -e 0.002 -r ~{mutation_rate} -R 0.15 -N ~{read_pairs} \
      -1 ~{read_length} -2 ~{read_length} -S ~{seed} \
      "~{fasta}" ~{sample}_1.fq ~{sample}_2.fq > ~{sample}.truth.txt
    gzip -n ~{sample}_1.fq ~{sample}_2.fq
  >>>
  output {
    File reads1 = "~{sample}_1.fq.gz"
    File reads2 = "~{sample}_2.fq.gz"
    File truth = "~{sample}.truth.txt"
  }
  runtime {
    cpu: 1
    memory: "256 MB"
  }
}

task align_markdup {
  input {
    File fasta
    Array[File] index_files
    String sample
    File reads1
    File reads2
    Int threads
  }
  command <<<
    set -euo pipefail
    # bwa wants the index next to the reference, under the same name
    ln -s "~{fasta}" reference.fa
    for f in ~{sep=" " index_files}; do ln -s "$f" "reference.fa.${f##*.}"; done
    bwa mem -t ~{threads} -R "@RG\tID:~{sample}\tSM:~{sample}\tPL:ILLUMINA" \
      reference.fa "~{reads1}" "~{reads2}" 2> bwa.log \
      | samtools fixmate -m -u - - \
      | samtools sort -@ ~{threads} -u -T sort_tmp - \
      | samtools markdup -@ ~{threads} -s - ~{sample}.bam 2> markdup.log
    samtools index ~{sample}.bam
    cat markdup.log >&2
  >>>
  output {
    File bam = "~{sample}.bam"
    File bai = "~{sample}.bam.bai"
  }
  runtime {
    cpu: threads
    memory: "1 GB"
  }
}

task call_variants {
  input {
    File fasta
    File fai
    String sample
    File bam
    File bai
  }
  command <<<
    set -euo pipefail
    ln -s "~{fasta}" reference.fa
    ln -s "~{fai}" reference.fa.fai
    ln -s "~{bam}" ~{sample}.bam
    ln -s "~{bai}" ~{sample}.bam.bai
    bcftools mpileup -Ou -f reference.fa -a AD,DP ~{sample}.bam \
      | bcftools call -mv -Oz -o ~{sample}.vcf.gz
    bcftools index -t ~{sample}.vcf.gz
    bcftools stats ~{sample}.vcf.gz > ~{sample}.stats.txt
  >>>
  output {
    File vcf = "~{sample}.vcf.gz"
    File tbi = "~{sample}.vcf.gz.tbi"
    File stats = "~{sample}.stats.txt"
  }
  runtime {
    cpu: 1
    memory: "512 MB"
  }
}

task check_calls {
  input {
    String sample
    File vcf
    File truth
    File bam
  }
  command <<<
    set -euo pipefail
    # SNPs only: one reference base, one (IUPAC-coded) alternative base
    awk '$3 ~ /^[ACGT]$/ && $4 ~ /^[A-Z]$/ {print $2}' "~{truth}" | sort -u > truth.pos
    bcftools view -H -v snps "~{vcf}" | cut -f2 | sort -u > called.pos
    truth=$(wc -l < truth.pos)
    called=$(wc -l < called.pos)
    found=$(comm -12 truth.pos called.pos | wc -l)
    mapped=$(samtools view -c -F 0x904 "~{bam}")
    total=$(samtools view -c -F 0x900 "~{bam}")
    printf '%s\t%d\t%d\t%d\t%d\t%d\n' ~{sample} "$truth" "$called" "$found" "$mapped" "$total"
  >>>
  output {
    String row = read_string(stdout())
  }
  runtime {
    cpu: 1
    memory: "256 MB"
  }
}

task summarize {
  input {
    Array[String] rows
  }
  command <<<
    set -euo pipefail
    python3 - "~{write_lines(rows)}" <<'PY'
    import sys
    header = "sample\ttruth_snps\tcalled_snps\ttrue_positives\trecall\tprecision\tmapped_reads"
    lines = [header]
    recalls = []
    for row in open(sys.argv[1]).read().split("\n"):
        if not row.strip():
            continue
        sample, truth, called, found, mapped, total = row.split("\t")
        truth, called, found = int(truth), int(called), int(found)
        recall = found / truth if truth else 1.0
        precision = found / called if called else 1.0
        recalls.append(recall)
        lines.append(
            f"{sample}\t{truth}\t{called}\t{found}\t{recall:.3f}\t{precision:.3f}\t{mapped}/{total}"
        )
    open("report.tsv", "w").write("\n".join(lines) + "\n")
    open("min_recall.txt", "w").write(f"{min(recalls):.4f}\n")
    print("\n".join(lines))
    PY
  >>>
  output {
    File report = "report.tsv"
    Float min_recall = read_float("min_recall.txt")
  }
  runtime {
    cpu: 1
    memory: "256 MB"
  }
}
