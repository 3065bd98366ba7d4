"""A render node's write grants on OSS (PostObject policies with ``starts-with``) against the
fake OSS over real HTTP, uploaded the way the node uploads (``renderhub.node.transfer``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from renderhub.node import transfer
from renderhub.storage.grants import _oss_grant
from renderhub.storage.oss import OSSStorage


def test_a_grant_writes_under_its_prefix_only(oss_storage: OSSStorage, tmp_path: Path) -> None:
    frame = tmp_path / "shot_0001.png"
    frame.write_bytes(b"\x89PNG a frame")
    grant = _oss_grant(oss_storage, "out/job-1/shot_0001.", 60, 1000)
    transfer.upload("", grant, "png", frame)
    assert oss_storage.read("out/job-1/shot_0001.png") == b"\x89PNG a frame"

    def post(key: str, data: bytes) -> int:
        fields = {**grant["fields"], "key": key}
        return requests.post(
            grant["url"], data=fields, files={"file": ("f", data)}, timeout=5
        ).status_code

    assert post("root/out/job-1/shot_0002.png", b"another frame") == 403  # past the prefix
    assert post("root/elsewhere.png", b"x") == 403
    assert post("root/out/job-1/shot_0001.exr", b"x" * 1001) == 400  # bigger than allowed
    assert not oss_storage.exists("out/job-1/shot_0002.png")


def test_a_refused_upload_says_why(oss_storage: OSSStorage, tmp_path: Path) -> None:
    big = tmp_path / "big.exr"
    big.write_bytes(b"x" * 2000)
    grant = _oss_grant(oss_storage, "out/shot_0001.", 60, 1000)
    with pytest.raises(transfer.TransferError, match="HTTP 400"):
        transfer.upload("", grant, "exr", big)
