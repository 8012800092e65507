"""Request fields, checked once at the boundary: every mistake is a 400 that names the field.

Nothing is coerced: ``"false"`` is not a boolean, ``"3"`` in a JSON body is not a number (query strings are
text by nature, so their numbers are parsed), unknown fields are refused rather than silently ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from jupyter_ext.errors import CellpipeError

MAX_ID_CHARS = 128


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages ("got a string")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _refuse_constant(name: str) -> Any:
    raise CellpipeError(f"{name} is not valid JSON", field="body", hint="send finite numbers")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object (an empty body is ``{}``)."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise CellpipeError("the JSON is nested too deeply", field="body") from None
    except ValueError as exc:  # includes UnicodeDecodeError
        raise CellpipeError(f"not valid JSON ({exc})", field="body", hint="send a JSON object") from None
    if not isinstance(data, dict):
        raise CellpipeError(f"must be a JSON object, got {json_type(data)}", field="body")
    return data


class Fields:
    """A JSON object's fields read one by one with the type each must have."""

    def __init__(self, data: Mapping[str, Any], *, allowed: Iterable[str], text_values: bool = False) -> None:
        self.data = data
        self.text_values = text_values  # query strings: numbers and booleans arrive as text
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise CellpipeError(
                "unknown field", field=unknown[0], hint=f"accepted fields: {', '.join(sorted(allowed))}"
            )

    def _get(self, name: str) -> Any:
        return self.data.get(name)

    def string(
        self,
        name: str,
        *,
        required: bool = False,
        max_chars: int = 4096,
        choices: Iterable[str] | None = None,
    ) -> str | None:
        value = self._get(name)
        if value is None:
            if required:
                raise CellpipeError("is required", field=name)
            return None
        value = checked_string(value, name, max_chars)
        if choices is not None:
            options = list(choices)
            if value not in options:
                raise CellpipeError(
                    f"unknown value '{value[:80]}'", field=name, hint=f"use one of: {', '.join(options)}"
                )
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if self.text_values and value in ("true", "false"):
            return value == "true"
        if not isinstance(value, bool):
            raise CellpipeError(f"must be true or false, got {json_type(value)}", field=name)
        return value

    def integer(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self._get(name)
        if value is None:
            return default
        if self.text_values and isinstance(value, str):
            try:
                value = int(value, 10)
            except ValueError:
                raise CellpipeError(f"must be a whole number, got '{value[:40]}'", field=name) from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise CellpipeError(f"must be a whole number, got {json_type(value)}", field=name)
        if not minimum <= value <= maximum:
            raise CellpipeError(f"must be between {minimum} and {maximum}, got {value}", field=name)
        return value

    def number(self, name: str) -> float | None:
        value = self._get(name)
        if value is None:
            return None
        if self.text_values and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise CellpipeError(f"must be a number, got '{value[:40]}'", field=name) from None
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise CellpipeError(f"must be a number, got {json_type(value)}", field=name)
        return float(value)

    def object(self, name: str) -> dict[str, Any] | None:
        """A JSON object whose keys are non-empty strings (parameters: name -> typed value)."""
        value = self._get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise CellpipeError(f"must be an object of name: value, got {json_type(value)}", field=name)
        for key in value:
            if not key or "\0" in key or len(key) > 256:
                raise CellpipeError(f"has an unusable name {key[:40]!r}", field=name)
        return value

    def notebook_content(self, name: str = "content") -> bytes | None:
        """Unsaved notebook content: the notebook as a JSON object, or its text."""
        value = self._get(name)
        if value is None:
            return None
        if isinstance(value, dict):
            return json.dumps(value).encode()  # ASCII-escaped: a lone surrogate stays the reader's problem
        if isinstance(value, str):
            try:
                return value.encode()
            except UnicodeEncodeError:
                raise CellpipeError(
                    "contains text that is not valid Unicode (a lone surrogate)",
                    field=name,
                    hint="send the notebook as saved by Jupyter",
                ) from None
        raise CellpipeError(
            f"must be the notebook as a JSON object or a string, got {json_type(value)}", field=name
        )


def identifier(value: str, *, field: str) -> str:
    """A run, step or schedule id taken from the URL (the route's pattern already limits the characters)."""
    if len(value) > MAX_ID_CHARS:
        raise CellpipeError(f"longer than {MAX_ID_CHARS} characters", field=field)
    return value


def checked_string(value: Any, field: str, max_chars: int) -> str:
    """``value`` if it is a string without NUL characters of at most ``max_chars``; else a 400's error."""
    if not isinstance(value, str):
        raise CellpipeError(f"must be a string, got {json_type(value)}", field=field)
    if "\0" in value:
        raise CellpipeError("must not contain NUL characters", field=field)
    if len(value) > max_chars:
        raise CellpipeError(f"longer than {max_chars} characters ({len(value)})", field=field)
    return value
