"""Custom parameters of a Software: their definitions, and values given at submission.

A definition is a dict ``{name, type, default, help, required, choices}`` stored in
``Software.parameters``. Values arrive as text (CLI ``--param k=v``, form fields, JSON)
and are coerced to the declared type; every problem is reported, not just the first.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError

from renderhub.agent.template import TEMPLATE_VARIABLES

from .choices import ParameterType

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_VALUE_LENGTH = 500
ParameterValue = str | int | float | bool


def validate_definitions(definitions: Any) -> list[dict[str, Any]]:
    """Check a list of parameter definitions; return it normalised or raise ValidationError."""
    if not isinstance(definitions, list):
        raise ValidationError("Parameters must be a JSON list of objects.")
    errors: list[str] = []
    seen: set[str] = set()
    normalised: list[dict[str, Any]] = []
    types = set(ParameterType.values)
    for i, item in enumerate(definitions, start=1):
        where = f"Parameter {i}"
        if not isinstance(item, dict):
            errors.append(f"{where} must be an object with at least 'name' and 'type'.")
            continue
        unknown = set(item) - {"name", "type", "default", "help", "required", "choices"}
        if unknown:
            errors.append(f"{where} has unknown keys: {', '.join(sorted(unknown))}.")
        name = item.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            errors.append(
                f"{where}: name must be lower-case letters, digits and '_', starting with a letter."
            )
            continue
        where = f"Parameter '{name}'"
        if name in seen:
            errors.append(f"{where} is defined twice.")
        if name in TEMPLATE_VARIABLES:
            errors.append(f"{where} clashes with the built-in template variable of that name.")
        seen.add(name)
        ptype = item.get("type", ParameterType.STRING)
        if ptype not in types:
            errors.append(f"{where}: type must be one of {', '.join(sorted(types))}.")
            continue
        choices = item.get("choices")
        if ptype == ParameterType.CHOICE:
            if not (
                isinstance(choices, list) and choices and all(isinstance(c, str) for c in choices)
            ):
                errors.append(
                    f"{where}: a choice parameter needs a non-empty list of text choices."
                )
                continue
        elif choices is not None:
            errors.append(f"{where}: only choice parameters take 'choices'.")
        if not isinstance(item.get("required", False), bool):
            # bool("no") is True: a JSON string here would silently make it required.
            errors.append(f"{where}: required must be true or false.")
        definition = {
            "name": name,
            "type": ptype,
            "help": str(item.get("help", "")),
            "required": bool(item.get("required", False)),
        }
        if choices is not None:
            definition["choices"] = choices
        if item.get("default") is not None:
            try:
                definition["default"] = coerce_value(definition, item["default"])
            except ValueError as exc:
                errors.append(f"{where}: default {exc}")
        normalised.append(definition)
    if errors:
        raise ValidationError(errors)
    return normalised


def coerce_value(definition: dict[str, Any], raw: Any) -> ParameterValue:
    """Turn ``raw`` into the definition's type or raise ValueError with a short reason."""
    ptype = definition["type"]
    if isinstance(raw, str):
        raw = raw.strip()
        if len(raw) > MAX_VALUE_LENGTH:
            raise ValueError(f"is longer than {MAX_VALUE_LENGTH} characters")
        if any(ord(ch) < 32 for ch in raw):
            raise ValueError("must not contain control characters")
    if ptype == ParameterType.BOOLEAN:
        if isinstance(raw, bool):
            return raw
        text = str(raw).lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"must be yes or no, not {raw!r}")
    if ptype == ParameterType.INTEGER:
        if isinstance(raw, bool) or not re.fullmatch(r"[+-]?\d{1,18}", str(raw)):
            raise ValueError(f"must be a whole number, not {raw!r}")
        return int(raw)
    if ptype == ParameterType.FLOAT:
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"must be a number, not {raw!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        return value
    text = str(raw)
    if ptype == ParameterType.CHOICE and text not in definition["choices"]:
        raise ValueError(f"must be one of {', '.join(definition['choices'])}, not {text!r}")
    return text


def coerce_values(
    definitions: list[dict[str, Any]], values: dict[str, Any]
) -> dict[str, ParameterValue]:
    """Values for every defined parameter (with defaults); ValidationError lists every problem."""
    errors: list[str] = []
    by_name = {d["name"]: d for d in definitions}
    for name in sorted(set(values) - set(by_name)):
        known = ", ".join(sorted(by_name)) or "none"
        errors.append(f"Unknown parameter '{name}' (this software takes: {known}).")
    result: dict[str, ParameterValue] = {}
    for name, definition in by_name.items():
        raw = values.get(name)
        if raw is None or raw == "":
            if "default" in definition:
                result[name] = definition["default"]
            elif definition.get("required"):
                errors.append(f"Parameter '{name}' is required.")
            else:
                result[name] = ""
            continue
        try:
            result[name] = coerce_value(definition, raw)
        except ValueError as exc:
            errors.append(f"Parameter '{name}' {exc}.")
    if errors:
        raise ValidationError(errors)
    return result
