version 1.0

## GATK4 germline short variants for one sample, on Cromwell's BatchCompute (BCS) backend:
## paired FASTQs per read group -> bwa mem -> MarkDuplicates -> SortSam -> BaseRecalibrator
## -> ApplyBQSR -> HaplotypeCaller in GVCF mode, scattered over interval lists -> MergeVcfs.
##
## Written for RenderHub's `manage.py gen_demo --type gatk`. The tools come from the VM
## image named in cluster_config (e.g. BatchCompute's img-gatk4), so no task sets docker;
## on BCS, cpu and memory are informative only: the instance type in cluster_config sizes
## each task. Keep every reference file and its indexes in one OSS folder: BCS maps the
## files of one folder into one local folder, which is where bwa and GATK look for them.

workflow GatkSingleSample {
  input {
    String sample_name
    Array[File] fastq_1
    Array[File] fastq_2
    Array[String] read_group_ids

    File ref_fasta
    File ref_fasta_index
    File ref_dict
    File ref_alt
    File ref_amb
    File ref_ann
    File ref_bwt
    File ref_pac
    File ref_sa

    File dbsnp_vcf
    File dbsnp_vcf_index
    Array[File] known_indels_vcfs
    Array[File] known_indels_indices
    Array[File] scattered_calling_intervals

    String cluster_config = "OnDemand ecs.sn2ne.4xlarge img-gatk4"
    String system_disk = "cloud_ssd 40"
    String data_disk = "cloud_ssd 500 /home/data/"
    Int bwa_threads = 16
  }

  scatter (i in range(length(fastq_1))) {
    call BwaMem {
      input:
        fastq_1 = fastq_1[i],
        fastq_2 = fastq_2[i],
        read_group_id = read_group_ids[i],
        sample_name = sample_name,
        ref_fasta = ref_fasta,
        ref_fasta_index = ref_fasta_index,
        ref_dict = ref_dict,
        ref_alt = ref_alt,
        ref_amb = ref_amb,
        ref_ann = ref_ann,
        ref_bwt = ref_bwt,
        ref_pac = ref_pac,
        ref_sa = ref_sa,
        threads = bwa_threads,
        cluster_config = cluster_config,
        system_disk = system_disk,
        data_disk = data_disk
    }
  }

  call MarkDuplicates {
    input:
      bams = BwaMem.bam,
      sample_name = sample_name,
      cluster_config = cluster_config,
      system_disk = system_disk,
      data_disk = data_disk
  }

  call SortSam {
    input:
      input_bam = MarkDuplicates.bam,
      sample_name = sample_name,
      cluster_config = cluster_config,
      system_disk = system_disk,
      data_disk = data_disk
  }

  call BaseRecalibrator {
    input:
      bam = SortSam.bam,
      bai = SortSam.bai,
      ref_fasta = ref_fasta,
      ref_fasta_index = ref_fasta_index,
      ref_dict = ref_dict,
      dbsnp_vcf = dbsnp_vcf,
      dbsnp_vcf_index = dbsnp_vcf_index,
      known_indels_vcfs = known_indels_vcfs,
      known_indels_indices = known_indels_indices,
      sample_name = sample_name,
      cluster_config = cluster_config,
      system_disk = system_disk,
      data_disk = data_disk
  }

  call ApplyBQSR {
    input:
      input_bam = SortSam.bam,
      input_bai = SortSam.bai,
      recalibration_report = BaseRecalibrator.report,
      ref_fasta = ref_fasta,
      ref_fasta_index = ref_fasta_index,
      ref_dict = ref_dict,
      sample_name = sample_name,
      cluster_config = cluster_config,
      system_disk = system_disk,
      data_disk = data_disk
  }

  scatter (intervals in scattered_calling_intervals) {
    call HaplotypeCaller {
      input:
        bam = ApplyBQSR.bam,
        bai = ApplyBQSR.bai,
        intervals = intervals,
        ref_fasta = ref_fasta,
        ref_fasta_index = ref_fasta_index,
        ref_dict = ref_dict,
        dbsnp_vcf = dbsnp_vcf,
        dbsnp_vcf_index = dbsnp_vcf_index,
        sample_name = sample_name,
        cluster_config = cluster_config,
        system_disk = system_disk,
        data_disk = data_disk
    }
  }

  call MergeVcfs {
    input:
      gvcfs = HaplotypeCaller.gvcf,
      gvcf_indexes = HaplotypeCaller.gvcf_index,
      sample_name = sample_name,
      cluster_config = cluster_config,
      system_disk = system_disk,
      data_disk = data_disk
  }

  output {
    File analysis_ready_bam = ApplyBQSR.bam
    File analysis_ready_bai = ApplyBQSR.bai
    File duplication_metrics = MarkDuplicates.metrics
    File recalibration_report = BaseRecalibrator.report
    File gvcf = MergeVcfs.gvcf
    File gvcf_index = MergeVcfs.gvcf_index
  }
}

task BwaMem {
  input {
    File fastq_1
    File fastq_2
    String read_group_id
    String sample_name
    File ref_fasta
    File ref_fasta_index
    File ref_dict
    File ref_alt
    File ref_amb
    File ref_ann
    File ref_bwt
    File ref_pac
    File ref_sa
    Int threads
    String cluster_config
    String system_disk
    String data_disk
  }
  command <<<
    set -euo pipefail
    bwa mem -K 100000000 -v 3 -Y -t ~{threads} \
      -R "@RG\tID:~{read_group_id}\tSM:~{sample_name}\tLB:~{sample_name}\tPL:ILLUMINA" \
      "~{ref_fasta}" "~{fastq_1}" "~{fastq_2}" \
      | samtools view -1 -o "~{read_group_id}.bam" -
  >>>
  output {
    File bam = "~{read_group_id}.bam"
  }
  runtime {
    cpu: threads
    memory: "14 GB"
    cluster: cluster_config
    systemDisk: system_disk
    dataDisk: data_disk
  }
}

task MarkDuplicates {
  input {
    Array[File] bams
    String sample_name
    String cluster_config
    String system_disk
    String data_disk
  }
  command <<<
    set -euo pipefail
    gatk --java-options "-Xms4g -Xmx12g" MarkDuplicates \
      --INPUT ~{sep=" --INPUT " bams} \
      --OUTPUT ~{sample_name}.dedup.bam \
      --METRICS_FILE ~{sample_name}.duplicate_metrics \
      --VALIDATION_STRINGENCY SILENT \
      --ASSUME_SORT_ORDER queryname \
      --CREATE_MD5_FILE true
  >>>
  output {
    File bam = "~{sample_name}.dedup.bam"
    File metrics = "~{sample_name}.duplicate_metrics"
  }
  runtime {
    memory: "16 GB"
    cluster: cluster_config
    systemDisk: system_disk
    dataDisk: data_disk
  }
}

task SortSam {
  input {
    File input_bam
    String sample_name
    String cluster_config
    String system_disk
    String data_disk
  }
  command <<<
    set -euo pipefail
    gatk --java-options "-Xms4g -Xmx12g" SortSam \
      --INPUT "~{input_bam}" \
      --OUTPUT ~{sample_name}.sorted.bam \
      --SORT_ORDER coordinate \
      --CREATE_INDEX true \
      --MAX_RECORDS_IN_RAM 300000
  >>>
  output {
    File bam = "~{sample_name}.sorted.bam"
    File bai = "~{sample_name}.sorted.bai"
  }
  runtime {
    memory: "16 GB"
    cluster: cluster_config
    systemDisk: system_disk
    dataDisk: data_disk
  }
}

task BaseRecalibrator {
  input {
    File bam
    File bai
    File ref_fasta
    File ref_fasta_index
    File ref_dict
    File dbsnp_vcf
    File dbsnp_vcf_index
    Array[File] known_indels_vcfs
    Array[File] known_indels_indices
    String sample_name
    String cluster_config
    String system_disk
    String data_disk
  }
  command <<<
    set -euo pipefail
    gatk --java-options "-Xms4g -Xmx6g" BaseRecalibrator \
      -R "~{ref_fasta}" \
      -I "~{bam}" \
      --use-original-qualities \
      --known-sites "~{dbsnp_vcf}" \
      --known-sites ~{sep=" --known-sites " known_indels_vcfs} \
      -O ~{sample_name}.recal_data.csv
  >>>
  output {
    File report = "~{sample_name}.recal_data.csv"
  }
  runtime {
    memory: "8 GB"
    cluster: cluster_config
    systemDisk: system_disk
    dataDisk: data_disk
  }
}

task ApplyBQSR {
  input {
    File input_bam
    File input_bai
    File recalibration_report
    File ref_fasta
    File ref_fasta_index
    File ref_dict
    String sample_name
    String cluster_config
    String system_disk
    String data_disk
  }
  command <<<
    set -euo pipefail
    gatk --java-options "-Xms3g -Xmx6g" ApplyBQSR \
      -R "~{ref_fasta}" \
      -I "~{input_bam}" \
      --bqsr-recal-file "~{recalibration_report}" \
      --use-original-qualities \
      --static-quantized-quals 10 --static-quantized-quals 20 --static-quantized-quals 30 \
      --add-output-sam-program-record \
      --create-output-bam-index true \
      -O ~{sample_name}.bam
  >>>
  output {
    File bam = "~{sample_name}.bam"
    File bai = "~{sample_name}.bai"
  }
  runtime {
    memory: "8 GB"
    cluster: cluster_config
    systemDisk: system_disk
    dataDisk: data_disk
  }
}

task HaplotypeCaller {
  input {
    File bam
    File bai
    File intervals
    File ref_fasta
    File ref_fasta_index
    File ref_dict
    File dbsnp_vcf
    File dbsnp_vcf_index
    String sample_name
    String cluster_config
    String system_disk
    String data_disk
  }
  command <<<
    set -euo pipefail
    gatk --java-options "-Xms6g -Xmx6g" HaplotypeCaller \
      -R "~{ref_fasta}" \
      -I "~{bam}" \
      -L "~{intervals}" \
      -D "~{dbsnp_vcf}" \
      -ERC GVCF \
      -G StandardAnnotation -G StandardHCAnnotation -G AS_StandardAnnotation \
      -O ~{sample_name}.g.vcf.gz
  >>>
  output {
    File gvcf = "~{sample_name}.g.vcf.gz"
    File gvcf_index = "~{sample_name}.g.vcf.gz.tbi"
  }
  runtime {
    memory: "8 GB"
    cluster: cluster_config
    systemDisk: system_disk
    dataDisk: data_disk
  }
}

task MergeVcfs {
  input {
    Array[File] gvcfs
    Array[File] gvcf_indexes
    String sample_name
    String cluster_config
    String system_disk
    String data_disk
  }
  command <<<
    set -euo pipefail
    gatk --java-options "-Xms2g -Xmx3g" MergeVcfs \
      --INPUT ~{sep=" --INPUT " gvcfs} \
      --OUTPUT ~{sample_name}.g.vcf.gz
  >>>
  output {
    File gvcf = "~{sample_name}.g.vcf.gz"
    File gvcf_index = "~{sample_name}.g.vcf.gz.tbi"
  }
  runtime {
    memory: "4 GB"
    cluster: cluster_config
    systemDisk: system_disk
    dataDisk: data_disk
  }
}
