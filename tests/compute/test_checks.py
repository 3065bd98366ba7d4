"""The system check for the BatchCompute settings."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from renderhub.cloud import check_configuration


def ids(settings: Any, **values: Any) -> list[str]:
    for name, value in values.items():
        setattr(settings, name, value)
    return [problem.id for problem in check_configuration()]


def test_nothing_set_is_fine(settings: Any) -> None:
    assert ids(settings, BATCHCOMPUTE_REGION="", BATCHCOMPUTE_ENDPOINT="") == []


@pytest.mark.parametrize(
    ("region", "endpoint", "expected"),
    [
        ("cn-hangzhou", "", []),
        ("cn-hangzhou", "batchcompute.cn-hangzhou.aliyuncs.com", []),
        ("cn-hangzhou", "https://batchcompute-vpc.cn-hangzhou.aliyuncs.com", []),
        ("cn-test", "http://127.0.0.1:8888", []),
        ("", "http://127.0.0.1:8888", ["batchcompute.E001"]),
        ("Hangzhou", "", ["batchcompute.E002"]),
        ("cn-hangzhou", "ftp://batchcompute.cn-hangzhou.aliyuncs.com", ["batchcompute.E003"]),
        ("cn-hangzhou", "https://10.0.0.5:8443", ["batchcompute.E004"]),
        ("cn-hangzhou", "batchcompute.cn-beijing.aliyuncs.com", ["batchcompute.E005"]),
        ("cn-hangzhou", "http://bc.example.com", ["batchcompute.W001"]),
    ],
)
def test_region_and_endpoint_must_agree(
    settings: Any, region: str, endpoint: str, expected: list[str]
) -> None:
    assert ids(settings, BATCHCOMPUTE_REGION=region, BATCHCOMPUTE_ENDPOINT=endpoint) == expected


def test_the_tag_and_release_policy_must_be_usable(settings: Any) -> None:
    assert ids(
        settings,
        BATCHCOMPUTE_REGION="cn-hangzhou",
        RENDERHUB_DEPLOYMENT_TAG="1 bad tag",
        BATCHCOMPUTE_RELEASE="sometimes",
    ) == ["batchcompute.E006", "batchcompute.E007"]


def test_manage_py_check_runs_it(settings: Any) -> None:
    settings.BATCHCOMPUTE_REGION = "cn-hangzhou"
    settings.BATCHCOMPUTE_ENDPOINT = "batchcompute.cn-beijing.aliyuncs.com"
    settings.BATCHCOMPUTE_ACCESS_KEY_ID = settings.BATCHCOMPUTE_ACCESS_KEY_SECRET = "x"
    with pytest.raises(SystemCheckError, match=r"batchcompute\.E005"):
        call_command("check")
