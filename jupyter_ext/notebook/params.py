"""Pipeline parameters: read from the parameters cell, overridden from the command line.

A parameters cell holds literal assignments only (``lr = 0.01``, ``layers: list = [64, 32]``), so every
parameter has a type and a default that can be shown, validated and passed to a backend as a typed value.
Overrides (``-p NAME=VALUE``) are parsed the way people type them for that type (``true``/``no``/``1`` for a
bool, ``1e3`` for an int, Python or JSON for a list) and checked against it; they are never spliced into
code. Names match in any case: Kale's packages lower-case them, cellpipe's keep the notebook's spelling.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import re
from typing import Any

from jupyter_ext.errors import NotebookError, ParameterError
from jupyter_ext.notebook.source import parse, to_python
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
        tree = parse(source)
    except SyntaxError as exc:
        raise NotebookError(
            f"parameters cell has a syntax error at line {exc.lineno}: {exc.msg}",
            notebook=notebook,
            cell=cell,
        ) from None
    parameters: dict[str, Parameter] = {}
    for stmt in tree.body:
        target, value_node = _literal_assignment(stmt)
        if target is not None and looks_like_credential(target):
            raise NotebookError(
                f"parameter '{target}' (line {stmt.lineno}) looks like a credential; parameter values are "
                "written in plain text to run records, MLflow, step notebooks, KFP packages and Job arguments",
                notebook=notebook,
                cell=cell,
                hint=f"remove it from the parameters cell and read it in the step from the environment "
                f"(os.environ['{target.upper()}']); on a cluster tag the step secret:SECRET:KEY:{target.upper()} "
                "so a Kubernetes Secret fills that variable (see docs/security.md)",
            )
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
        problem = value_problem(value)
        if problem:
            raise NotebookError(
                f"parameter '{target}' (line {stmt.lineno}): {problem}",
                notebook=notebook,
                cell=cell,
                hint="parameters are plain values that records, MLflow and KFP store as JSON",
            )
        parameters[target] = Parameter(name=target, type=kind, default=value, cell=cell)
    return list(parameters.values())


# Words in a parameter name that say its value is a credential (names split at '_' and case changes).
# Single words are matched whole ("max_tokens" and "tokenizer" are not credentials); "key" only in pairs.
CREDENTIAL_WORDS = frozenset({"password", "passwd", "pwd", "passphrase", "secret", "token", "credential",
                              "credentials", "apikey", "privatekey", "bearer"})  # fmt: skip
CREDENTIAL_PAIRS = frozenset({("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"),
                              ("client", "secret"), ("auth", "key"), ("signing", "key")})  # fmt: skip


def looks_like_credential(name: str) -> bool:
    """Whether a parameter name says its value is a credential (``api_token``, ``dbPassword``, ``AWS_SECRET_KEY``)."""
    words = [word.lower() for word in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+", name)]
    return bool(CREDENTIAL_WORDS.intersection(words)) or any(
        pair in CREDENTIAL_PAIRS for pair in itertools.pairwise(words)
    )


MAX_VALUE_DEPTH = 32  # nested lists/dicts in one parameter value


def value_problem(value: Any) -> str | None:
    """Why a parameter value cannot be stored and passed on as JSON (None when it can): numbers must be
    finite, dict keys strings, text valid Unicode, nesting at most :data:`MAX_VALUE_DEPTH` levels."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_VALUE_DEPTH:
            return f"nests more than {MAX_VALUE_DEPTH} levels deep"
        if isinstance(item, float) and not math.isfinite(item):
            return f"{item} is not a finite number (1e999 overflows to infinity)"
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "holds an invalid character (a lone surrogate)"
        elif isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                return "dict keys must be strings"
            pending.extend((key, depth + 1) for key in item)
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list | tuple):
            pending.extend((child, depth + 1) for child in item)
    return None


def _literal_assignment(stmt: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id, stmt.value
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
        return stmt.target.id, stmt.value
    return None, None


# Spellings people type for booleans on a command line or in a form (compared lower-cased).
TRUE_WORDS = frozenset({"true", "yes", "y", "on", "1", "t"})
FALSE_WORDS = frozenset({"false", "no", "n", "off", "0", "f"})
EXPECTED = {
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "bool": "true or false (also yes/no, on/off, 1/0)",
    "list": "a list (Python or JSON)",
    "dict": "a dict (Python or JSON)",
}


def find_parameter(parameters: list[Parameter], name: str) -> Parameter | None:
    """The parameter called ``name``; failing an exact match, the one whose name differs only in case.

    Kale's packages lower-case parameter names and cellpipe's keep the notebook's spelling, so a user who
    knows one of them may type either (``-p LR=0.1`` or ``-p lr=0.1`` for ``LR = 0.01``).
    """
    for parameter in parameters:
        if parameter.name == name:
            return parameter
    folded = [p for p in parameters if p.name.lower() == name.lower()]
    if len(folded) > 1:
        raise ParameterError(
            f"'{name}' matches several parameters that differ only in case ({', '.join(p.name for p in folded)})",
            field="-p",
            hint="spell the name exactly as in the parameters cell",
        )
    return folded[0] if folded else None


def parse_value(parameter: Parameter, text: str, *, source: str = "-p") -> Any:
    """A typed value for ``parameter`` from text as people type it: ``true``/``no``/``1`` for a bool,
    ``1e3`` for an int, ``[1, 2]`` or JSON for a list. Never evaluated as code."""
    raw = text.strip()
    kind = "str" if parameter.default is None else parameter.type
    if kind == "str":
        value = _literal(raw)
        return value if isinstance(value, str) or (value is None and parameter.default is None) else text
    if kind == "bool":
        if raw.lower() in TRUE_WORDS:
            return True
        if raw.lower() in FALSE_WORDS:
            return False
        raise _expected(parameter, text, source)
    if kind in ("int", "float"):
        try:
            number = float(raw.replace("_", ""))
        except ValueError:
            raise _expected(parameter, text, source) from None
        if kind == "float":
            return number
        if number.is_integer() and abs(number) < 2**63:
            return int(raw) if raw.lstrip("+-").isdigit() else int(number)
        raise _expected(parameter, text, source)
    value = _literal(raw)
    if value is _INVALID:
        try:
            value = json.loads(raw)  # [true, null] and friends
        except ValueError:
            raise _expected(parameter, text, source) from None
    if isinstance(value, tuple):
        value = list(value)
    return coerce(parameter, value, source=source)


_INVALID = object()


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _INVALID


def _expected(parameter: Parameter, text: str, source: str) -> ParameterError:
    return ParameterError(
        f"'{text}' is not a valid {parameter.type}: expected {EXPECTED[parameter.type]}",
        field=f"parameter '{parameter.name}' ({source})",
        hint=f"e.g. -p {parameter.name}={_example(parameter)}",
    )


def coerce(parameter: Parameter, value: Any, *, source: str = "-p") -> Any:
    """Check a typed override against the parameter's type.

    Accepted besides the exact type: an int for a float, a whole float or 0/1 where an int or a bool is
    expected (JSON forms send 3.0 and 1), and text for a non-text parameter, parsed as on the command line.
    """
    kind = type_of(value)
    if value is None and parameter.default is None:
        return None
    if kind == parameter.type:
        return value
    if isinstance(value, str):
        return parse_value(parameter, value, source=source)
    if parameter.type == "float" and kind == "int":
        return float(value)
    if parameter.type == "int" and kind == "float" and value.is_integer():
        return int(value)
    if parameter.type == "bool" and kind == "int" and value in (0, 1):
        return bool(value)
    raise ParameterError(
        f"expects {parameter.type} ({EXPECTED[parameter.type]}), got {kind or type(value).__name__} {value!r}",
        field=f"parameter '{parameter.name}' ({source})",
        hint=f"e.g. -p {parameter.name}={_example(parameter)}",
    )


def parse_override(text: str, parameters: list[Parameter]) -> tuple[str, Any]:
    """Parse ``NAME=VALUE`` from the command line. Strings need no quotes for str parameters."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ParameterError(f"'{text}' is not NAME=VALUE", field="-p", hint="e.g. -p learning_rate=0.1")
    parameter = find_parameter(parameters, name)
    if parameter is None:
        raise _unknown(name, parameters, "-p")
    return parameter.name, parse_value(parameter, raw)


def _unknown(name: str, parameters: list[Parameter], field: str) -> ParameterError:
    listing = ", ".join(p.name for p in parameters) or "none: tag a cell 'parameters' to declare some"
    return ParameterError(f"unknown parameter '{name}'", field=field, hint=f"known parameters: {listing}")


def resolve(parameters: list[Parameter], overrides: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """Defaults with overrides applied and type-checked; accepts ``["a=1"]`` or ``{"a": 1}``.

    Names may be given in any case (see :func:`find_parameter`); the result uses the notebook's spelling.
    """
    values = {p.name: p.default for p in parameters}
    if not overrides:
        return values
    if isinstance(overrides, dict):
        for name, value in overrides.items():
            parameter = find_parameter(parameters, name)
            if parameter is None:
                raise _unknown(name, parameters, "override")
            values[parameter.name] = _checked(
                parameter.name, coerce(parameter, value, source="override"), "override"
            )
        return values
    for text in overrides:
        name, value = parse_override(text, parameters)
        values[name] = _checked(name, value, "-p")
    return values


def _checked(name: str, value: Any, source: str) -> Any:
    problem = value_problem(value)
    if problem:
        raise ParameterError(
            problem,
            field=f"parameter '{name}' ({source})",
            hint="give a plain value that JSON can hold (finite numbers, string keys)",
        )
    return value


def _example(parameter: Parameter) -> str:
    return {"int": "3", "float": "0.5", "str": "text", "bool": "true", "list": "[1,2]", "dict": '{"a":1}'}[
        parameter.type
    ]
