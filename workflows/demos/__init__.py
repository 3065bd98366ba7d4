"""Demo bundles that ``manage.py gen_demo`` writes (like ``bcs gen DIR -t gatk``).

* ``germline``: a small workflow that runs here for real on the embedded engine.
* ``gatk``: the GATK4 single-sample germline bundle for BatchCompute's Cromwell app (or a
  Cromwell ≤ 80 server with the BCS backend): WDL, inputs, options, a README and the
  submit command.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from django.conf import settings

HERE = Path(__file__).resolve().parent
GERMLINE_WDL = HERE / "germline" / "germline.wdl"
GATK_WDL = HERE / "gatk" / "gatk-single-sample.wdl"

GERMLINE_INPUTS = {
    "germline.samples": ["sample1", "sample2"],
    "germline.reference_length": 50000,
    "germline.seed": 7,
    "germline.read_pairs": 20000,
    "germline.read_length": 100,
    "germline.mutation_rate": 0.001,
    "germline.threads": 2,
}

HG38 = "references/hg38/"


def _manage() -> str:
    return (
        shlex.quote(str(Path(settings.BASE_DIR) / ".venv" / "bin" / "python"))
        + " "
        + (shlex.quote(str(Path(settings.BASE_DIR) / "manage.py")))
    )


def _write(target: Path, files: dict[str, str]) -> list[Path]:
    written = []
    for name, text in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if name.endswith(".sh"):
            path.chmod(0o755)
        written.append(path)
    return written


def _json(data: Any) -> str:
    return json.dumps(data, indent=2) + "\n"


def germline(target: Path, project: str = "demo") -> list[Path]:
    submit = (
        f"{_manage()} submit_workflow germline.wdl --project {shlex.quote(project)} "
        "--inputs inputs.json --options options.json --label demo=germline --wait"
    )
    readme = f"""# Germline variant calling demo (runs here)

A small germline workflow that runs for real on RenderHub's embedded engine (miniwdl,
tasks as host processes): a synthetic 50 kb reference, `wgsim` paired-end reads for two
samples (wgsim also prints the mutations it planted: the truth set), `bwa mem`,
`samtools` fixmate/sort/markdup/index, `bcftools` mpileup/call, `bcftools stats`, and a
check of the called SNPs against the truth. About 5 seconds on 2 cores.

Needs `samtools` (it ships `wgsim`), `bwa`, `bcftools` and `python3` on the worker's PATH
(`make wdl-tools`, or `apt-get install samtools bwa bcftools`), a running worker
(`make worker`) and a project (here `{project}`).

    ./submit.sh

or, by hand:

    {submit}

Then `manage.py workflow ID` shows the calls, `manage.py workflow_outputs ID` the outputs
(`report.tsv`: per sample the truth SNPs, the called SNPs, how many were found, recall and
precision), `manage.py workflow_logs ID --call align_markdup` the logs, and the staff
pages under /workflows/ the same with a timeline. Submitting the same inputs again is
served from miniwdl's call cache.

Files: `germline.wdl` (the workflow), `inputs.json` (sizes and seeds: change
`germline.samples`, `germline.read_pairs` or `germline.reference_length` to scale it),
`options.json` (`read_from_cache`/`write_to_cache` switch the call cache).
"""
    script = f"""#!/bin/sh
# Submit the germline demo to RenderHub and wait for it (exit status 0 when it succeeded).
cd "$(dirname "$0")" || exit 1
exec {submit}
"""
    return _write(
        target,
        {
            "germline.wdl": GERMLINE_WDL.read_text(),
            "inputs.json": _json(GERMLINE_INPUTS),
            "options.json": _json({"read_from_cache": True, "write_to_cache": True}),
            "README.md": readme,
            "submit.sh": script,
        },
    )


def gatk_inputs(oss_path: str, cluster_config: str) -> dict[str, Any]:
    ref = f"{oss_path}{HG38}Homo_sapiens_assembly38"
    data = f"{oss_path}data/NA12878/"
    intervals = [
        f"{oss_path}{HG38}scattered_calling_intervals/temp_{i:04d}_of_50/scattered.interval_list"
        for i in range(1, 51)
    ]
    return {
        "GatkSingleSample.sample_name": "NA12878",
        "GatkSingleSample.fastq_1": [f"{data}NA12878_L001_R1.fastq.gz"],
        "GatkSingleSample.fastq_2": [f"{data}NA12878_L001_R2.fastq.gz"],
        "GatkSingleSample.read_group_ids": ["NA12878.L001"],
        "GatkSingleSample.ref_fasta": f"{ref}.fasta",
        "GatkSingleSample.ref_fasta_index": f"{ref}.fasta.fai",
        "GatkSingleSample.ref_dict": f"{ref}.dict",
        "GatkSingleSample.ref_alt": f"{ref}.fasta.64.alt",
        "GatkSingleSample.ref_amb": f"{ref}.fasta.64.amb",
        "GatkSingleSample.ref_ann": f"{ref}.fasta.64.ann",
        "GatkSingleSample.ref_bwt": f"{ref}.fasta.64.bwt",
        "GatkSingleSample.ref_pac": f"{ref}.fasta.64.pac",
        "GatkSingleSample.ref_sa": f"{ref}.fasta.64.sa",
        "GatkSingleSample.dbsnp_vcf": f"{ref}.dbsnp138.vcf",
        "GatkSingleSample.dbsnp_vcf_index": f"{ref}.dbsnp138.vcf.idx",
        "GatkSingleSample.known_indels_vcfs": [
            f"{oss_path}{HG38}Mills_and_1000G_gold_standard.indels.hg38.vcf.gz",
            f"{ref}.known_indels.vcf.gz",
        ],
        "GatkSingleSample.known_indels_indices": [
            f"{oss_path}{HG38}Mills_and_1000G_gold_standard.indels.hg38.vcf.gz.tbi",
            f"{ref}.known_indels.vcf.gz.tbi",
        ],
        "GatkSingleSample.scattered_calling_intervals": intervals,
        "GatkSingleSample.cluster_config": cluster_config,
    }


def gatk(
    target: Path,
    oss_path: str = "oss://your-bucket/renderhub-gatk/",
    project: str = "genomics",
    instance_type: str = "ecs.sn2ne.4xlarge",
    image: str = "img-gatk4",
) -> list[Path]:
    oss_path = oss_path.rstrip("/") + "/"
    cluster_config = f"OnDemand {instance_type} {image}"
    work = f"{oss_path}gatk-single-sample/worker_dir/"
    outputs = f"{oss_path}gatk-single-sample/outputs/"
    options = {
        "read_from_cache": False,
        "default_runtime_attributes": {"autoReleaseJob": True},
    }
    submit = (
        f"{_manage()} submit_workflow src/gatk-single-sample.wdl --project {shlex.quote(project)} "
        "\\\n  --inputs src/gatk-single-sample.hg38.inputs.json "
        "--options src/gatk-single-sample.options.json \\\n"
        f"  --engine batchcompute-cromwell --working-dir {work} --outputs-dir {outputs} "
        "\\\n  --label pipeline=gatk4-germline --wait"
    )
    bcs = (
        "bcs asub cromwell gatk-job \\\n"
        "  --config ClassicNetwork=false \\\n"
        "  --input_from_file_WDL src/gatk-single-sample.wdl \\\n"
        "  --input_from_file_WORKFLOW_INPUTS src/gatk-single-sample.hg38.inputs.json \\\n"
        "  --input_from_file_WORKFLOW_OPTIONS src/gatk-single-sample.options.json \\\n"
        f"  --input_WORKING_DIR {work} \\\n"
        f"  --output_OUTPUTS_DIR {outputs} \\\n"
        "  -t bcs.a2.large -d cloud_efficiency"
    )
    main = f"""#!/bin/sh
# Submit the GATK4 single-sample germline pipeline to BatchCompute's Cromwell app through
# RenderHub: the WDL, inputs and options are staged to OSS and an App job of the public
# :cromwell app is created (what `bcs asub cromwell` does), then followed until it ends.
cd "$(dirname "$0")" || exit 1
exec {submit}

# The same with Alibaba's bcs CLI, for reference:
# {bcs.replace(chr(10), chr(10) + "# ")}
"""
    readme = f"""# GATK4 single-sample germline pipeline on BatchCompute (Cromwell)

This bundle is what `bcs gen DIR -t gatk` gave, for RenderHub: one sample's paired FASTQs
(one pair per read group) through `bwa mem`, MarkDuplicates, SortSam, BaseRecalibrator,
ApplyBQSR and HaplotypeCaller in GVCF mode (scattered over 50 interval lists), merged into
one GVCF. It runs on **BatchCompute's public `:cromwell` app** (engine
`batchcompute-cromwell`), or on your own **Cromwell server with the BCS backend**
(engine `cromwell`). Cromwell dropped its BatchCompute backend after release 80, so a
server must be Cromwell 80 or older.

Files:

- `src/gatk-single-sample.wdl`: the workflow (WDL 1.0). Tools (`bwa`, `samtools`, `gatk`)
  must be on the PATH of the VM image in `cluster_config` (`{cluster_config}`; `{image}`
  is the image `bcs gen -t gatk` names, `--image` picks another). Runtime `cluster`,
  `systemDisk` and `dataDisk` are BCS runtime attributes; `cpu`/`memory` are ignored
  there (the instance type sizes each task). It was checked here with miniwdl's parser
  and type checker only: no BatchCompute account was available to run it.
- `src/gatk-single-sample.hg38.inputs.json`: the inputs. The paths below `{oss_path}`
  are where you put the hg38 resource bundle (reference, bwa index, dbSNP, known indels,
  50 scattered calling interval lists) and the sample's FASTQs; keep each reference file
  next to its indexes. Replace them with your own copies.
- `src/gatk-single-sample.options.json`: Cromwell workflow options.
- `main.sh`: the submit command (and the equivalent `bcs asub cromwell` line).

Before submitting, RenderHub parses and typechecks the WDL with miniwdl and checks the
inputs against its declared inputs. It needs `BATCHCOMPUTE_REGION` (or
`BATCHCOMPUTE_ENDPOINT`) and an AccessKey, and OSS storage for the folders:

    ./main.sh

The run's calls are read from `OUTPUTS_DIR/workflow_metadata.json` when the App job ends;
`manage.py workflow ID` shows them, `manage.py workflow_outputs ID` the outputs.

To run it on a Cromwell ≤ 80 server with the BCS backend instead, set `CROMWELL_URL` and
use `--engine cromwell` (the working and outputs folders then become the workflow's
`final_call_logs_dir` and `final_workflow_outputs_dir` options).
"""
    return _write(
        target,
        {
            "src/gatk-single-sample.wdl": GATK_WDL.read_text(),
            "src/gatk-single-sample.hg38.inputs.json": _json(gatk_inputs(oss_path, cluster_config)),
            "src/gatk-single-sample.options.json": _json(options),
            "main.sh": main,
            "README.md": readme,
        },
    )
