"""What the BatchCompute account may use (instance types, disks, images) and the check of a
cluster against it, before anything is created."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError

from renderhub.cloud import get_client
from renderhub.compute import ComputeError

from .choices import Backend
from .models import Cluster

CHOICES_TTL = 600  # seconds the account's instance types, disks and images are cached


@dataclass(frozen=True)
class CloudChoices:
    instance_types: list[tuple[str, str]]  # (value, label)
    spot_instance_types: list[str]
    disk_types: list[str]
    images: list[tuple[str, str]]


def cloud_choices(refresh: bool = False) -> CloudChoices:
    """Instance types, disk types and images from BatchCompute (cached CHOICES_TTL)."""
    key = f"renderhub:batchcompute:choices:{settings.BATCHCOMPUTE_REGION}"
    if not refresh and (cached := cache.get(key)) is not None:
        return CloudChoices(**cached)
    resources = get_client().resources()
    choices = CloudChoices(
        instance_types=[
            (t.name, f"{t.name} ({t.cpus} CPU, {t.memory_gb:g} GB)")
            for t in resources.instance_types
        ],
        spot_instance_types=resources.spot_instance_types,
        disk_types=resources.disk_types,
        images=resources.images,
    )
    cache.set(key, choices.__dict__, CHOICES_TTL)
    return choices


def validate_cloud(cluster: Cluster) -> None:
    """Field errors for what BatchCompute would refuse, before anything is created."""
    if cluster.backend != Backend.BATCHCOMPUTE:
        return
    try:
        choices = cloud_choices()
    except ComputeError as exc:
        raise ValidationError(f"Cannot check the cluster against BatchCompute: {exc}") from None
    errors: dict[str, str] = {}
    types = [value for value, _label in choices.instance_types]
    if cluster.instance_type not in types:
        errors["instance_type"] = f"Choose one of {', '.join(types)}."
    elif cluster.spot and cluster.instance_type not in choices.spot_instance_types:
        spot = ", ".join(choices.spot_instance_types) or "none"
        errors["instance_type"] = f"Spot VMs are available as {spot} only."
    if cluster.disk_type and cluster.disk_type not in choices.disk_types:
        errors["disk_type"] = f"Choose one of {', '.join(choices.disk_types)}."
    image_id = cluster.image.image_id
    if not image_id.startswith("m-") and image_id not in [i for i, _n in choices.images]:
        errors["image"] = (
            f"{cluster.image} runs {image_id}, which is not a BatchCompute image of this "
            f"account; available: {', '.join(i for i, _n in choices.images)} (or an m-… ECS image)."
        )
    if not cluster.spot and cluster.spot_price_limit is not None:
        errors["spot_price_limit"] = "A price limit is for spot VMs only."
    if errors:
        raise ValidationError(errors)
