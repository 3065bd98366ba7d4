"""Form fields that edit a Software's JSON as rows: the command one argument per row, the
parameters one per row (name, type, default, choices, help, required).

They round-trip to the same JSONField values. The rows work without JavaScript (each
column is a list of same-named inputs, read in page order; blank rows are dropped, so a
few empty rows are offered for new entries); static/js/software-editor.js adds, removes
and reorders rows and keeps the variables list current. An "advanced" JSON box stays
available: ticked, its text is used instead of the rows. A post without the rows marker
(an old form, a script) is read as JSON text in the field itself, indented or not.
"""

from __future__ import annotations

import json
from itertools import zip_longest
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from renderhub.agent.template import TEMPLATE_VARIABLES

from .choices import ParameterType
from .parameters import validate_definitions

ROWS = "__rows"  # marks a post made from the rows
USE_JSON = "__use_json"  # the advanced box is ticked: use its text
JSON_TEXT = "__json"
DELETE = "__delete"  # row numbers ticked "remove" (the no-JavaScript way to remove a row)
PARAMETER_COLUMNS = ("name", "type", "default", "choices", "help", "required")
EXTRA_ROWS = 2


def _getlist(data: Any, key: str) -> list[str]:
    if hasattr(data, "getlist"):
        return [str(v) for v in data.getlist(key)]
    value = data.get(key)
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def _as_json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _parse(value: Any) -> tuple[Any, str]:
    """(value as Python, JSON text to show when it cannot be shown as rows or '')."""
    if isinstance(value, str):
        try:
            return json.loads(value), ""
        except ValueError:
            return None, value
    return value, ""


class RowsWidget(forms.Widget):
    """Rows plus an advanced JSON box; subclasses say how rows map to the value."""

    template_name = ""
    blank_row: Any = ""
    error_rows: frozenset[int] = frozenset()  # row numbers an error is about (set by the form)

    class Media:
        css = {"all": ["css/software-editor.css"]}
        js = ["js/software-editor.js"]

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        if data.get(name + USE_JSON):
            return data.get(name + JSON_TEXT, "")
        if name + ROWS not in data:
            return data.get(name)  # JSON text, or None when absent
        return self.rows_from_data(data, name)

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return not any(key in data for key in (name, name + ROWS, name + USE_JSON))

    def rows_from_data(self, data: Any, name: str) -> Any:
        raise NotImplementedError

    def rows_for(self, value: Any) -> list[Any] | None:
        """The value as rows, or None when it cannot be shown as rows."""
        raise NotImplementedError

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        parsed, bad_text = _parse(value)
        rows = None if bad_text else self.rows_for(parsed if parsed is not None else [])
        context["widget"].update(
            {
                # Numbered as posted: the no-JavaScript "remove" boxes name rows by number.
                "items": list(enumerate([*(rows or []), *[self.blank_row] * EXTRA_ROWS], start=1)),
                "error_rows": self.error_rows,
                "use_json": rows is None,
                "json_text": bad_text or _as_json_text(parsed if parsed is not None else []),
                "marker": name + ROWS,
                "use_json_name": name + USE_JSON,
                "json_name": name + JSON_TEXT,
                "delete_name": name + DELETE,
            }
        )
        return context

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        # The project's template engine: the form renderer does not search templates/.
        return SafeString(
            render_to_string(self.template_name, self.get_context(name, value, attrs))
        )


class CommandWidget(RowsWidget):
    """One argument per row, with the variables it may use listed beside them."""

    template_name = "images/widgets/command.html"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.parameters: list[dict[str, Any]] = []  # this software's, for the variables list

    def rows_from_data(self, data: Any, name: str) -> list[str]:
        return [arg for arg in _getlist(data, name) if arg.strip()]

    def rows_for(self, value: Any) -> list[Any] | None:
        if isinstance(value, list) and all(isinstance(arg, str) for arg in value):
            return list(value)
        return None

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["widget"]["builtins"] = sorted(TEMPLATE_VARIABLES.items())
        context["widget"]["own"] = [
            (p.get("name", ""), p.get("help", ""))
            for p in self.parameters
            if isinstance(p, dict) and p.get("name")
        ]
        return context


def _default_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


class ParametersWidget(RowsWidget):
    """One parameter per row: name, type, default, choices (comma separated), help, required."""

    template_name = "images/widgets/parameters.html"
    blank_row: Any = {}

    def rows_from_data(self, data: Any, name: str) -> list[dict[str, Any]]:
        columns = [_getlist(data, f"{name}__{column}") for column in PARAMETER_COLUMNS]
        removed = set(_getlist(data, name + DELETE))
        rows: list[dict[str, Any]] = []
        for number, cells in enumerate(zip_longest(*columns, fillvalue=""), start=1):
            pname, ptype, default, choices, help_text, required = (c.strip() for c in cells)
            if str(number) in removed or not (pname or default or choices or help_text):
                continue  # a blank row (or one ticked "remove") is no parameter
            row: dict[str, Any] = {
                "name": pname,
                "type": ptype or ParameterType.STRING,
                "help": help_text,
                "required": required == "required",
            }
            if default:
                row["default"] = default
            if choices:
                row["choices"] = [c.strip() for c in choices.split(",") if c.strip()]
            rows.append(row)
        return rows

    def rows_for(self, value: Any) -> list[Any] | None:
        if not isinstance(value, list) or not all(isinstance(p, dict) for p in value):
            return None
        rows = []
        for p in value:
            choices = p.get("choices")
            if choices is not None and not (
                isinstance(choices, list)
                and all(isinstance(c, str) and "," not in c for c in choices)
            ):
                return None  # rows would change it: keep it as JSON
            rows.append(
                {
                    "name": str(p.get("name", "")),
                    "type": str(p.get("type", ParameterType.STRING)),
                    "default": _default_text(p.get("default")),
                    "choices": ", ".join(choices or []),
                    "help": str(p.get("help", "")),
                    "required": p.get("required") is True,
                }
            )
        return rows

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["widget"]["types"] = ParameterType.choices
        context["widget"]["columns"] = {c: f"{name}__{c}" for c in PARAMETER_COLUMNS}
        return context


class JsonRowsField(forms.Field):
    """A list edited as rows (or as JSON text in the advanced box)."""

    default_error_messages = {"invalid_json": "This is not valid JSON: %(reason)s."}

    def to_python(self, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return []
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                reason = f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
                raise ValidationError(
                    self.error_messages["invalid_json"],
                    code="invalid_json",
                    params={"reason": reason},
                ) from None
        return value

    def validate(self, value: Any) -> None:
        if self.required and value in ([], None):
            raise ValidationError(self.error_messages["required"], code="required")

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return bool(self.to_python(data) != (initial if initial is not None else []))
        except ValidationError:
            return True


class CommandField(JsonRowsField):
    widget = CommandWidget
    default_error_messages = {
        "required": "Give the command: the program in the first row, then one argument per row."
    }


class ParametersField(JsonRowsField):
    widget = ParametersWidget

    def has_changed(self, initial: Any, data: Any) -> bool:
        # Rows post text ("yes", "64"): compare definitions as the model stores them.
        try:
            before = validate_definitions(initial if initial is not None else [])
            return bool(validate_definitions(self.to_python(data)) != before)
        except ValidationError:
            return super().has_changed(initial, data)
