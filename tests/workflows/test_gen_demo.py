"""manage.py gen_demo --type germline|gatk DIR: bundles that validate (and, here, run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError

from workflows import validation

pytestmark = pytest.mark.embedded


def test_the_germline_bundle_is_complete_and_valid(call: Any, tmp_path: Path) -> None:
    out = call("gen_demo", "--type", "germline", str(tmp_path / "demo")).out

    demo = tmp_path / "demo"
    assert sorted(p.name for p in demo.iterdir()) == [
        "README.md",
        "germline.wdl",
        "inputs.json",
        "options.json",
        "submit.sh",
    ]
    assert out.endswith(f"Wrote 5 files to {demo}; see README.md, then ./submit.sh\n")
    inputs = json.loads((demo / "inputs.json").read_text())
    checked = validation.check((demo / "germline.wdl").read_text(), inputs, {})
    assert checked.inputs == inputs
    script = (demo / "submit.sh").read_text()
    assert "submit_workflow germline.wdl --project demo --inputs inputs.json" in script
    assert (demo / "submit.sh").stat().st_mode & 0o100


def test_the_gatk_bundle_targets_batchcompute(call: Any, tmp_path: Path) -> None:
    call("gen_demo", "-t", "gatk", str(tmp_path / "gatk"), "--oss-path", "oss://lab-bucket/gatk")

    gatk = tmp_path / "gatk"
    src = gatk / "src"
    inputs = json.loads((src / "gatk-single-sample.hg38.inputs.json").read_text())
    checked = validation.check((src / "gatk-single-sample.wdl").read_text(), inputs, {})
    assert checked.info.name == "GatkSingleSample"
    assert all(f.startswith("oss://lab-bucket/gatk/") for f in checked.files)
    assert len(inputs["GatkSingleSample.scattered_calling_intervals"]) == 50
    main = (gatk / "main.sh").read_text()
    assert "--engine batchcompute-cromwell" in main
    assert "--working-dir oss://lab-bucket/gatk/gatk-single-sample/worker_dir/" in main
    assert "# bcs asub cromwell gatk-job" in main
    readme = (gatk / "README.md").read_text()
    assert "Cromwell 80 or older" in readme
    options = json.loads((src / "gatk-single-sample.options.json").read_text())
    assert options["default_runtime_attributes"] == {"autoReleaseJob": True}


def test_it_will_not_overwrite_a_folder_unless_forced(call: Any, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")

    with pytest.raises(CommandError, match="is not empty; use --force"):
        call("gen_demo", "--type", "germline", str(tmp_path))
    call("gen_demo", "--type", "germline", str(tmp_path), "--force")
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_the_gatk_oss_path_must_be_oss(call: Any, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--oss-path must be an oss:// folder"):
        call("gen_demo", "--type", "gatk", str(tmp_path / "x"), "--oss-path", "/data/")
