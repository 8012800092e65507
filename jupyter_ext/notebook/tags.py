"""The cell tag language: Kale's vocabulary (``step:``/``block:``, ``prev:``, ...) plus papermill's.

:func:`parse_cell_tags` turns one cell's tags into a :class:`CellTags`. Tags that are not ours
(``hide-input``, ``remove-cell``...) are ignored; a tag that uses one of our prefixes but is malformed is
an error naming the notebook and cell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from jupyter_ext.errors import NotebookError
from jupyter_ext.pipeline.model import Secret

STEP_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
# Kubernetes quantity: 2, 0.5, 500m, 4Gi, 1e3...
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?([eE][0-9]+|[munkMGTPE]|[KMGTPE]i)?$")
RESOURCE = re.compile(
    r"^(cpu|memory|ephemeral-storage|[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?)$"
)
ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Cell roles. A cell has at most one role; "step" cells may name several steps (Kale allows it).
ROLE_TAGS = {
    "imports": "imports",
    "functions": "functions",
    "pipeline-parameters": "parameters",
    "parameters": "parameters",  # papermill
    "pipeline-metrics": "metrics",
    "skip": "skip",
    "injected-parameters": "skip",  # papermill's output from an earlier run: never part of the pipeline
}
PREFIXES = ("step", "block", "prev", "limit", "image", "annotation", "label", "cache", "secret", "data")


@dataclass
class CellTags:
    role: str | None = None  # imports | functions | parameters | metrics | skip | None (code)
    steps: list[str] = field(default_factory=list)
    prev: list[str] = field(default_factory=list)
    limits: dict[str, str] = field(default_factory=dict)
    image: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    cache: bool | None = None
    secrets: list[Secret] = field(default_factory=list)
    data: list[str] = field(default_factory=list)

    @property
    def step_settings(self) -> bool:
        """Whether the cell carries settings that belong to a step."""
        return bool(self.prev or self.limits or self.image or self.annotations or self.labels
                    or self.cache is not None or self.secrets)  # fmt: skip


def parse_cell_tags(tags: list[str], *, notebook: str, cell: int) -> CellTags:
    parsed = CellTags()
    for tag in tags:
        _apply(parsed, str(tag).strip(), notebook=notebook, cell=cell)
    if parsed.role and parsed.steps:
        raise NotebookError(
            f"cell is tagged both '{parsed.role}' and 'step:{parsed.steps[0]}'",
            notebook=notebook,
            cell=cell,
            hint="a cell is either a step's code or a special cell; split it into two cells",
        )
    return parsed


def _apply(parsed: CellTags, tag: str, *, notebook: str, cell: int) -> None:
    def bad(message: str, hint: str) -> NotebookError:
        return NotebookError(f"malformed tag '{tag}': {message}", notebook=notebook, cell=cell, hint=hint)

    if tag in ROLE_TAGS:
        role = ROLE_TAGS[tag]
        if parsed.role and parsed.role != role:
            raise NotebookError(
                f"cell is tagged both '{parsed.role}' and '{role}'",
                notebook=notebook,
                cell=cell,
                hint="keep one of the two tags, or split the cell",
            )
        parsed.role = role
        return
    prefix, sep, rest = tag.partition(":")
    if prefix not in PREFIXES or (not sep and prefix not in ("step", "block", "prev")):
        return  # not ours (hide-input, remove-cell, ...)
    if prefix in ("step", "block", "prev"):
        if not rest:
            raise bad("no step name", f"write {prefix}:NAME, e.g. {prefix}:train")
        if not STEP_NAME.match(rest):
            raise bad(
                f"'{rest}' is not a valid step name",
                "use lowercase letters, digits and underscores, starting with a letter or '_' (e.g. train_model)",
            )
        target = parsed.prev if prefix == "prev" else parsed.steps
        if rest not in target:
            target.append(rest)
    elif prefix == "limit":
        resource, _, value = rest.rpartition(":")
        if not resource or not value:
            raise bad(
                "expected limit:RESOURCE:VALUE", "e.g. limit:nvidia.com/gpu:1, limit:cpu:2, limit:memory:4Gi"
            )
        if not RESOURCE.match(resource):
            raise bad(
                f"unknown resource '{resource}'",
                "use cpu, memory, ephemeral-storage or an extended resource such as nvidia.com/gpu",
            )
        if not QUANTITY.match(value):
            raise bad(f"'{value}' is not a resource quantity", "e.g. 2, 500m, 4Gi")
        if resource.endswith("/gpu") and not (value.isdigit() and int(value) > 0):
            raise bad(f"GPU count '{value}' must be a whole number", f"e.g. limit:{resource}:1")
        parsed.limits[resource] = value
    elif prefix == "image":
        if not rest:
            raise bad("no image reference", "e.g. image:registry.example.com/team/cellpipe-gpu:1.0")
        parsed.image = rest
    elif prefix in ("annotation", "label"):
        key, _, value = rest.partition(":")
        if not key:
            raise bad(f"expected {prefix}:KEY:VALUE", f"e.g. {prefix}:team:ml")
        (parsed.annotations if prefix == "annotation" else parsed.labels)[key] = value
    elif prefix == "cache":
        if rest not in ("enabled", "disabled"):
            raise bad("expected cache:enabled or cache:disabled", "e.g. cache:disabled")
        parsed.cache = rest == "enabled"
    elif prefix == "secret":
        parts = rest.split(":")
        if len(parts) != 3 or not all(parts) or not ENV_VAR.match(parts[2]):
            raise bad("expected secret:SECRET:KEY:ENV_VAR", "e.g. secret:db-credentials:password:DB_PASSWORD")
        parsed.secrets.append(Secret(secret=parts[0], key=parts[1], env=parts[2]))
    elif prefix == "data":
        if not rest:
            raise bad("no path", "e.g. data:data/train.csv (relative to the notebook; globs allowed)")
        parsed.data.append(rest)
