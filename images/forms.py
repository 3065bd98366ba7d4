"""The Software form of the admin (page and ComputeImage inline) and the /software/ pages."""

from __future__ import annotations

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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The command's variables list names this software's own parameters too.
        definitions = self._parameters_value()
        self.fields["command_template"].widget.parameters = (
            definitions if isinstance(definitions, list) else []
        )

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
        field = self.fields["parameters"]
        if self.is_bound:
            raw = field.widget.value_from_datadict(
                self.data, self.files, self.add_prefix("parameters")
            )
            try:
                return field.to_python(raw)
            except ValidationError:
                return []
        return self.get_initial_for_field(field, "parameters")
