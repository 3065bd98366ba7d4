from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from projects.models import Project
from projects.storage_help import URL_ATTRS, project_storage_help

from . import services
from .choices import Engine
from .models import WorkflowRun
from .validation import MAX_WDL_BYTES, MAX_ZIP_BYTES


def _json_field(value: str) -> Any:
    if not value.strip():
        return {}
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"This is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None


class SubmitWorkflowForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.none())
    engine = forms.ChoiceField(choices=Engine.choices, initial=Engine.MINIWDL)
    wdl_file = forms.FileField(required=False, label="WDL file")
    wdl_url = forms.CharField(
        required=False, max_length=1024, label="or WDL URL", help_text="file:// or oss://"
    )
    inputs = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80}),
        help_text='Inputs JSON, e.g. {"germline.samples": ["a", "b"]}',
    )
    options = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text='Options JSON, e.g. {"read_from_cache": false}',
    )
    labels = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="name=value per line"
    )
    dependencies_url = forms.CharField(
        required=False, max_length=1024, help_text="Zip of imported WDL files (storage URL)."
    )
    dependencies_zip = forms.FileField(
        required=False,
        label="or dependencies zip",
        help_text="Imported WDL files, in any folder layout. Not needed for a WDL URL whose "
        "imports sit next to it.",
    )
    no_cache = forms.BooleanField(
        required=False,
        label="Run every call again",
        help_text="Take nothing from the project's call cache (results still go into it).",
    )
    name = forms.CharField(required=False, max_length=200)
    working_dir = forms.CharField(required=False, max_length=1024, help_text="Default: derived.")
    outputs_dir = forms.CharField(required=False, max_length=1024, help_text="Default: derived.")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["project"].queryset = Project.objects.visible_to(user)  # type: ignore[attr-defined]
        for name in ("wdl_url", "dependencies_url", "working_dir", "outputs_dir"):
            field = self.fields[name]
            field.widget.attrs.update(URL_ATTRS)
            field.help_text = project_storage_help(user, field.help_text)

    def clean_wdl_file(self) -> str:
        upload = self.cleaned_data.get("wdl_file")
        if not upload:
            return ""
        if upload.size > MAX_WDL_BYTES:
            raise ValidationError(f"The WDL is larger than {MAX_WDL_BYTES} bytes.")
        try:
            return str(upload.read().decode())
        except UnicodeDecodeError:
            raise ValidationError("The WDL file is not UTF-8 text.") from None

    def clean_dependencies_zip(self) -> bytes | None:
        upload = self.cleaned_data.get("dependencies_zip")
        if not upload:
            return None
        if upload.size > MAX_ZIP_BYTES:
            raise ValidationError(f"The zip is larger than {MAX_ZIP_BYTES} bytes.")
        return bytes(upload.read())

    def clean_inputs(self) -> Any:
        return _json_field(self.cleaned_data["inputs"])

    def clean_options(self) -> Any:
        return _json_field(self.cleaned_data["options"])

    def clean_labels(self) -> dict[str, str]:
        labels = {}
        for number, line in enumerate(self.cleaned_data["labels"].splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise ValidationError(f"Line {number}: write labels as name=value.")
            labels[key.strip()] = value.strip()
        return labels

    def submit(self) -> WorkflowRun | None:
        """The new run, or None with the services' refusal put on the fields."""
        data = self.cleaned_data
        if data["no_cache"] and isinstance(data["options"], dict):
            data["options"] = {**data["options"], "read_from_cache": False}
        request = services.WorkflowRequest(
            project=data["project"],
            wdl_source=data["wdl_file"],
            wdl_url=data["wdl_url"].strip(),
            inputs=data["inputs"],
            options=data["options"],
            labels=data["labels"],
            dependencies_url=data["dependencies_url"].strip(),
            dependencies_zip=data["dependencies_zip"],
            engine=data["engine"],
            name=data["name"],
            working_dir=data["working_dir"].strip(),
            outputs_dir=data["outputs_dir"].strip(),
        )
        try:
            return services.submit(request, self.user)
        except services.SubmissionError as exc:
            zip_field = "dependencies_zip" if data["dependencies_zip"] else "dependencies_url"
            fields = {"wdl": "wdl_file", "dependencies": zip_field}
            for key, messages in exc.message_dict.items():
                field = fields.get(key, key)
                for message in messages:
                    self.add_error(field if field in self.fields else None, message)
            return None
