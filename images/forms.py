"""The Software form of the admin (page and ComputeImage inline) and the /software/ pages."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from .editors import CommandField, ParametersField
from .models import Software

SOFTWARE_FIELDS = (
    "name",
    "version",
    "scene_suffixes",
    "command_template",
    "parameters",
    "progress_parser",
    "network",
)

EDITORS = ("command_template", "parameters")
# How the model's messages name a row (renderhub.agent.template, images.parameters).
ARGUMENT = re.compile(r"argument (\d+) ")
PARAMETER_NUMBER = re.compile(r"Parameter (\d+)\b")
PARAMETER_NAME = re.compile(r"Parameter '([^']*)'")
UNKNOWN = re.compile(r"unknown variable \{(\w+)\}")


class SoftwareForm(forms.ModelForm):
    command_template = CommandField(
        label="Command",
        help_text=Software._meta.get_field("command_template").help_text,
    )
    parameters = ParametersField(
        required=False,
        help_text=Software._meta.get_field("parameters").help_text,
    )

    class Meta:
        model = Software
        fields = ["image", *SOFTWARE_FIELDS]

    # Who saves it (set by the pages and the admin); None: a trusted caller (code, tests).
    user: Any = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        self._check_network_rights(cleaned)
        return cleaned

    def _check_network_rights(self, cleaned: dict[str, Any]) -> None:
        """With network the sandboxed program reaches the render machine's own services
        (127.0.0.1: the broker, the database): giving that to a command, or a new command
        to software that has it, is for superusers, not for holders of the software rights."""
        if self.user is None or self.user.is_superuser or not cleaned.get("network"):
            return
        had = self.instance.pk is not None and self.instance.network
        if had and not {"command_template", "image"} & set(self.changed_data):
            return
        raise ValidationError(
            {
                "network": "Only a superuser can give software network access, or change the "
                "command or image of software that has it: with network the renderer reaches "
                "the render machine's own services (127.0.0.1)."
            }
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The command's variables list names this software's own parameters too.
        definitions = self._parameters_value()
        self.fields["command_template"].widget.parameters = (
            definitions if isinstance(definitions, list) else []
        )

    def full_clean(self) -> None:
        super().full_clean()
        if self.is_bound:
            self._mark_error_rows()

    def _mark_error_rows(self) -> None:
        """Tell the editors which rows the errors are about (numbered as the messages are)."""
        args = self._bound_value("command_template")
        args = args if isinstance(args, list) else []
        marked: set[int] = set()
        for message in self.errors.get("command_template", []):
            if match := ARGUMENT.match(str(message)):
                marked.add(int(match[1]))
            elif match := UNKNOWN.match(str(message)):
                field = "{" + match[1] + "}"
                marked.update(i for i, arg in enumerate(args, 1) if field in str(arg))
        self.fields["command_template"].widget.error_rows = frozenset(marked)
        definitions = self._parameters_value()
        listed = definitions if isinstance(definitions, list) else []  # JSON may be any value
        names = [d.get("name") if isinstance(d, dict) else None for d in listed]
        rows: set[int] = set()
        for message in self.errors.get("parameters", []):
            if match := PARAMETER_NUMBER.match(str(message)):
                rows.add(int(match[1]))
            elif match := PARAMETER_NAME.match(str(message)):
                rows.update(i for i, name in enumerate(names, start=1) if name == match[1])
        self.fields["parameters"].widget.error_rows = frozenset(rows)

    def add_error(self, field: str | None, error: Any) -> None:
        if field is None and isinstance(error, ValidationError) and hasattr(error, "error_dict"):
            error = ValidationError(self._without_repeats(error.error_dict))
        super().add_error(field, error)

    def _without_repeats(self, errors: dict[str, list[ValidationError]]) -> dict[str, Any]:
        """The model's errors minus what the editors already said in their own terms, and
        minus "unknown variable" while the parameters themselves could not be read."""
        kept: dict[str, Any] = {}
        for name, items in errors.items():
            if name in EDITORS and name in self.errors:
                continue
            if name == "command_template" and "parameters" in self.errors:
                items = [
                    e for e in items if not " ".join(e.messages).startswith("unknown variable")
                ]
            if items:
                kept[name] = items
        return kept

    def _parameters_value(self) -> Any:
        if self.is_bound:
            return self._bound_value("parameters")
        return self.get_initial_for_field(self.fields["parameters"], "parameters")

    def _bound_value(self, name: str) -> Any:
        """What the editor ``name`` posted, as a Python value ([] when unreadable)."""
        field = self.fields[name]
        raw = field.widget.value_from_datadict(self.data, self.files, self.add_prefix(name))
        try:
            return field.to_python(raw)
        except ValidationError:
            return []
