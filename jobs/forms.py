from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from clusters.models import Cluster
from images.models import Software
from projects.models import Project

from . import services
from .models import RenderJob


def parse_param_lines(text: str) -> dict[str, str]:
    """``key=value`` per line (the CLI's ``--param k=v``) into a dict; blank lines skipped."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"Line {number}: write parameters as name=value.")
        values[key.strip()] = value.strip()
    return values


class SubmitRenderForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.none())
    software = forms.ModelChoiceField(queryset=Software.objects.select_related("image"))
    cluster = forms.ModelChoiceField(queryset=Cluster.objects.all())
    scenes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Scene file URLs, one per line (e.g. file:///…/scene.blend or oss://bucket/a.blend).",
    )
    frames = forms.CharField(help_text="e.g. 1-48, 1-10,20,30-40 or 1-100x5", max_length=500)
    nodes = forms.IntegerField(required=False, min_value=1, help_text="Spread frames over N nodes.")
    chunk_size = forms.IntegerField(
        required=False, min_value=1, help_text="Or: frames per chunk (a work queue)."
    )
    parameters = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="name=value per line"
    )
    priority = forms.IntegerField(initial=0, min_value=-100, max_value=100)
    test_frame_first = forms.BooleanField(
        required=False, help_text="Render the first frame alone; queue the rest if it succeeds."
    )
    name = forms.CharField(required=False, max_length=150)

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["project"].queryset = Project.objects.visible_to(user)  # type: ignore[attr-defined]

    def clean_scenes(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["scenes"].splitlines() if line.strip()]

    def clean_parameters(self) -> dict[str, str]:
        return parse_param_lines(self.cleaned_data.get("parameters") or "")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("nodes") and data.get("chunk_size"):
            self.add_error("chunk_size", "Give nodes or a chunk size, not both.")
        return data

    def submit(self) -> list[RenderJob]:
        data = self.cleaned_data
        request = services.RenderRequest(
            project=data["project"],
            software=data["software"],
            cluster=data["cluster"],
            scenes=data["scenes"],
            frames=data["frames"],
            nodes=data.get("nodes"),
            chunk_size=data.get("chunk_size"),
            parameters=data.get("parameters") or {},
            priority=data.get("priority") or 0,
            test_frame_first=data.get("test_frame_first", False),
            name=data.get("name", ""),
        )
        try:
            return services.submit_render(request, user=self.user)
        except services.SubmissionError as exc:
            for field, messages in exc.message_dict.items():
                for message in messages:
                    self.add_error(field if field in self.fields else None, message)
            return []
