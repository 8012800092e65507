"""User-facing errors.

A :class:`CellpipeError` is a mistake the user can fix (a bad tag, a missing file, a cycle). The CLI and
the server print it as one line, without a traceback. It always says where (notebook, cell, step, field)
and, where we know it, what to do.
"""

from __future__ import annotations

from pathlib import Path


class CellpipeError(Exception):
    """An error caused by user input, reported as one readable line."""

    def __init__(
        self,
        message: str,
        *,
        notebook: str | Path | None = None,
        cell: int | None = None,
        step: str | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.notebook = str(notebook) if notebook is not None else None
        self.cell = cell  # 1-based position of the cell in the notebook, markdown cells included
        self.step = step
        self.field = field
        self.hint = hint

    def where(self) -> str:
        parts = []
        if self.notebook:
            parts.append(self.notebook)
        if self.cell is not None:
            parts.append(f"cell {self.cell}")
        if self.step:
            parts.append(f"step '{self.step}'")
        if self.field:
            parts.append(self.field)
        return ": ".join(parts)

    def __str__(self) -> str:
        where = self.where()
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text = f"{text.rstrip('.')}. {self.hint[:1].upper()}{self.hint[1:]}"
        return text

    def to_dict(self) -> dict:
        return {
            "message": self.message,
            "notebook": self.notebook,
            "cell": self.cell,
            "step": self.step,
            "field": self.field,
            "hint": self.hint,
            "text": str(self),
        }


class CellpipeWarning(CellpipeError):
    """A likely mistake that does not stop the work (a tag typo, a Kale setting cellpipe ignores).

    Never raised: collected (``Pipeline.warnings`` holds their :meth:`to_dict`) and shown by the CLI and
    the UI, with the same where/what-to-do parts as an error.
    """


class NotebookError(CellpipeError):
    """The notebook cannot be read or its tags/code do not form a valid pipeline."""


class ParameterError(CellpipeError):
    """A parameter value or override is invalid."""


class StepFailed(CellpipeError):
    """A step raised while it ran (the user's code failed, not cellpipe)."""


class MarshalError(CellpipeError):
    """A variable could not be saved or loaded between steps."""


class SnapshotError(CellpipeError):
    """A snapshot could not be taken, verified or restored."""


class TargetError(CellpipeError):
    """A cluster target refused or could not be reached."""
