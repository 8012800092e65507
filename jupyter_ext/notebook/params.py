"""Pipeline parameters: read from the parameters cell, overridden from the command line.

A parameters cell holds literal assignments only (``lr = 0.01``, ``layers: list = [64, 32]``), so every
parameter has a type and a default that can be shown, validated and passed to a backend as a typed value.
Overrides (``-p NAME=VALUE``) are parsed as Python literals and checked against that type; they are
never spliced into code.
"""

from __future__ import annotations

import ast
from typing import Any

from jupyter_ext.errors import NotebookError, ParameterError
from jupyter_ext.notebook.source import to_python
from jupyter_ext.pipeline.model import Parameter


def type_of(value: Any) -> str | None:
    if isinstance(value, bool):  # before int: bool is an int
        return "bool"
    for name, kind in (("int", int), ("float", float), ("str", str), ("list", list), ("dict", dict)):
        if isinstance(value, kind):
            return name
    return None


def parse_parameters_cell(source: str, *, notebook: str, cell: int) -> list[Parameter]:
    try:
        tree = ast.parse(to_python(source))
    except SyntaxError as exc:
        raise NotebookError(
            f"parameters cell has a syntax error at line {exc.lineno}: {exc.msg}",
            notebook=notebook,
            cell=cell,
        ) from None
    parameters: dict[str, Parameter] = {}
    for stmt in tree.body:
        target, value_node = _literal_assignment(stmt)
        if target is None:
            line = ast.get_source_segment(to_python(source), stmt) or ""
            raise NotebookError(
                f"parameters cell line {stmt.lineno} is not a literal assignment: {line.splitlines()[0][:60]!r}",
                notebook=notebook,
                cell=cell,
                hint="write NAME = VALUE with a literal value (number, string, bool, list, dict, None); "
                "move computed values to a step",
            )
        try:
            value = ast.literal_eval(value_node)
        except ValueError:
            raise NotebookError(
                f"parameter '{target}' (line {stmt.lineno}) is not a literal value",
                notebook=notebook,
                cell=cell,
                hint="use a number, string, bool, list, dict or None; compute derived values in a step",
            ) from None
        if isinstance(value, tuple):
            value = list(value)
        kind = "str" if value is None else type_of(value)
        if kind is None:
            raise NotebookError(
                f"parameter '{target}' has an unsupported type {type(value).__name__}",
                notebook=notebook,
                cell=cell,
                hint="parameters may be int, float, str, bool, list or dict",
            )
        parameters[target] = Parameter(name=target, type=kind, default=value, cell=cell)
    return list(parameters.values())


def _literal_assignment(stmt: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id, stmt.value
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
        return stmt.target.id, stmt.value
    return None, None


def coerce(parameter: Parameter, value: Any, *, source: str = "-p") -> Any:
    """Check an override against the parameter's type; ints are accepted for float parameters."""
    kind = type_of(value)
    if value is None and parameter.default is None:
        return None
    if kind == parameter.type:
        return value
    if parameter.type == "float" and kind == "int":
        return float(value)
    raise ParameterError(
        f"expects {parameter.type}, got {kind or type(value).__name__} {value!r}",
        field=f"parameter '{parameter.name}' ({source})",
        hint=f"e.g. -p {parameter.name}={_example(parameter)}",
    )


def parse_override(text: str, parameters: list[Parameter]) -> tuple[str, Any]:
    """Parse ``NAME=VALUE`` from the command line. Strings need no quotes for str parameters."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ParameterError(f"'{text}' is not NAME=VALUE", field="-p", hint="e.g. -p learning_rate=0.1")
    known = {p.name: p for p in parameters}
    if name not in known:
        listing = ", ".join(known) or "none: tag a cell 'parameters' to declare some"
        raise ParameterError(f"unknown parameter '{name}'", field="-p", hint=f"known parameters: {listing}")
    parameter = known[name]
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        if parameter.type != "str" and parameter.default is not None:
            raise ParameterError(
                f"'{raw}' is not a valid {parameter.type}",
                field=f"parameter '{name}' (-p)",
                hint=f"e.g. -p {name}={_example(parameter)}",
            ) from None
        value = raw  # bare word for a str parameter
    if parameter.type == "str" and not isinstance(value, str) and value is not None:
        value = raw  # -p tag=2024 keeps the text for a str parameter
    return name, coerce(parameter, value)


def resolve(parameters: list[Parameter], overrides: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """Defaults with overrides applied and type-checked; accepts ``["a=1"]`` or ``{"a": 1}``."""
    values = {p.name: p.default for p in parameters}
    if not overrides:
        return values
    if isinstance(overrides, dict):
        known = {p.name: p for p in parameters}
        for name, value in overrides.items():
            if name not in known:
                raise ParameterError(
                    f"unknown parameter '{name}'", hint=f"known parameters: {', '.join(known)}"
                )
            values[name] = coerce(known[name], value, source="override")
        return values
    for text in overrides:
        name, value = parse_override(text, parameters)
        values[name] = value
    return values


def _example(parameter: Parameter) -> str:
    return {"int": "3", "float": "0.5", "str": "text", "bool": "True", "list": "[1,2]", "dict": "{'a':1}"}[
        parameter.type
    ]
