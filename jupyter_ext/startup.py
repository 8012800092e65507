"""Start-up cost of cellpipe's own processes (the CLI, the tracking worker).

jsonschema, imported by nbformat, kfp (through kubernetes' dynamic client and kubernetes-validate) and
MLflow, imports ``rfc3987_syntax`` for its "iri" format check, and that module compiles 38 Lark grammars
at import: about 1.5 s of CPU, ten times the rest of ``cellpipe inspect``. :func:`defer_iri_grammars`
puts a stand-in module first whose ``is_valid_syntax`` imports the real one on first use, so IRI checks
still work and cost their time only in a process that really validates an IRI.
"""

from __future__ import annotations

import sys
import types

_NAME = "rfc3987_syntax"


def defer_iri_grammars() -> None:
    """Make importing ``rfc3987_syntax`` free until ``is_valid_syntax`` is called (idempotent)."""
    if _NAME in sys.modules:
        return
    stand_in = types.ModuleType(_NAME, "stand-in: imports the real module on first use (jupyter_ext.startup)")

    def is_valid_syntax(term: str, value: str) -> bool:
        return _real().is_valid_syntax(term, value)

    stand_in.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]

    def other_names(name: str) -> object:
        if name.startswith("__"):  # the import system probes __path__ and the like: not a use
            raise AttributeError(name)
        return getattr(_real(), name)

    stand_in.__getattr__ = other_names  # type: ignore[attr-defined]
    sys.modules[_NAME] = stand_in


def _real() -> types.ModuleType:
    import importlib

    module = sys.modules.get(_NAME)
    if module is None or module.__spec__ is None:  # still the stand-in: load the real module in its place
        sys.modules.pop(_NAME, None)
        module = importlib.import_module(_NAME)
    return module
