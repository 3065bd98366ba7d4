"""Cluster forms: the admin's cluster form checks BatchCompute's choices; resize asks for N."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from . import services
from .choices import Backend
from .models import Cluster

CLOUD_FIELDS = ("backend", "image", "instance_type", "disk_type", "spot", "spot_price_limit")


class ClusterAdminForm(forms.ModelForm):
    """A new BatchCompute cluster is checked against the account's instance types, disk
    types and images (cached calls) before anything is created."""

    class Meta:
        model = Cluster
        fields = "__all__"  # noqa: DJ007 - the admin picks and orders them

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        backend: str = data.get("backend") or ""  # None when the field did not validate
        sized = self.instance.pk is None or {"desired_nodes", "max_nodes"} & set(self.changed_data)
        if sized and data.get("desired_nodes") is not None and data.get("max_nodes"):
            size = Cluster(
                name=data.get("name") or "", backend=backend, max_nodes=data["max_nodes"]
            )
            try:
                services.check_size(size, data["desired_nodes"])
            except ValidationError as exc:
                self.add_error("desired_nodes", exc.messages)
        checked = self.instance.pk is None or any(f in self.changed_data for f in CLOUD_FIELDS)
        if backend == Backend.BATCHCOMPUTE and checked and data.get("image"):
            candidate = Cluster(**{f: data.get(f) for f in CLOUD_FIELDS if f in data})
            try:
                services.validate_cloud(candidate)
            except ValidationError as exc:
                if hasattr(exc, "error_dict"):
                    for field, errors in exc.error_dict.items():
                        self.add_error(field if field in self.fields else None, errors)
                else:
                    self.add_error(None, exc)
        return data


class ResizeForm(forms.Form):
    nodes = forms.IntegerField(
        min_value=0,
        label="Nodes",
        help_text="BatchCompute: VMs to run (0 keeps the cluster but stops paying for VMs). "
        "Own machines: how many nodes a job is split over by default; no machine is started "
        "or stopped.",
    )
