"""The cell tag language: Kale's vocabulary (``step:``/``block:``, ``prev:``, ...) plus papermill's.

:func:`parse_cell_tags` turns one cell's tags into a :class:`CellTags`. Tags that are not ours
(``hide-input``, ``remove-cell``...) are ignored; a tag that uses one of our prefixes but is malformed is
an error naming the notebook and cell. Two kinds of ignored tag are kept in :attr:`CellTags.ignored` so
the analysis can warn about them: tags that look like a slip of ours (``stpe:train``, ``step-train``,
``pipeline-parameter``), with the tag that was probably meant, and Kale tags cellpipe does not implement.
An empty ``step:`` or ``block:`` continues the step above, as in Kale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from jupyter_ext.errors import NotebookError
from jupyter_ext.notebook.suggest import closest
from jupyter_ext.pipeline.model import Secret

# At least one letter or digit: KFP derives component names from it, and '_' alone makes none.
STEP_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
STEP_NAME_HAS_WORD = re.compile(r"[a-z0-9]")
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
# Kale tags cellpipe does not implement, with what they do in Kale: reported, not silently dropped.
KALE_UNIMPLEMENTED = {
    "report": "the HTML report of a step",
    "notebook": "notebook references (sub-pipelines)",
}
# Tags of other Jupyter tools (Jupyter Book, nbconvert, nbval, Thebe...): never taken for a slip of ours.
FOREIGN_TAGS = frozenset(
    {
        "hide-input", "hide-output", "hide-cell", "remove-input", "remove-output", "remove-cell",
        "remove-stderr", "raises-exception", "thebe-init", "full-width", "margin", "popout",
        "scroll-output", "output_scroll", "nbval-ignore-output", "nbval-skip", "nbval-raises-exception",
    }
)  # fmt: skip
# Short forms people write for our role tags, too far from them for the edit distance.
SHORT_FORMS = {
    "metrics": "pipeline-metrics", "metric": "pipeline-metrics", "params": "parameters", "param": "parameters",
    "pipeline-params": "pipeline-parameters", "import": "imports", "function": "functions",
}  # fmt: skip
_SEPARATED = re.compile(r"^([A-Za-z]+)\s*[-:_=/.\s]\s*(\S.*)$")


@dataclass
class IgnoredTag:
    """A tag the analysis leaves out but should tell the user about."""

    tag: str
    suggestion: str | None = None  # the tag that was probably meant (a slip of ours)
    unimplemented: str | None = None  # the Kale tag prefix cellpipe does not implement


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
    continues: bool = False  # an empty step:/block: tag: the cell continues the step above (Kale)
    ignored: list[IgnoredTag] = field(default_factory=list)

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
    if prefix in KALE_UNIMPLEMENTED and sep:
        parsed.ignored.append(IgnoredTag(tag, unimplemented=prefix))
        return
    if prefix not in PREFIXES or (not sep and prefix not in ("step", "block", "prev")):
        suggestion = suggest_tag(tag)
        if suggestion is not None:
            parsed.ignored.append(IgnoredTag(tag, suggestion=suggestion))
        return  # not ours (hide-input, remove-cell, ...)
    if prefix in ("step", "block", "prev"):
        if not rest and sep and prefix != "prev":
            parsed.continues = True  # Kale: an empty step name continues the previous step
            return
        if not rest:
            raise bad("no step name", f"write {prefix}:NAME, e.g. {prefix}:train")
        if not STEP_NAME.match(rest) or not STEP_NAME_HAS_WORD.search(rest):
            raise bad(
                f"'{rest}' is not a valid step name",
                "use lowercase letters, digits and underscores, starting with a letter or '_' and not only "
                "underscores (e.g. train_model)",
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


def suggest_tag(tag: str) -> str | None:
    """The tag of ours that ``tag`` is probably a slip of, or None when it does not look like one.

    Catches a wrong case or separator (``Step:train``, ``step-train``, ``prev train``, ``pipeline_metrics``)
    and small misspellings (``stpe:train``, ``pipeline-parameter``, ``limits:cpu:2``).
    """
    text = tag.strip()
    if text.lower() in FOREIGN_TAGS:
        return None
    normal = re.sub(r"[\s_]+", "-", text.lower())
    role = normal if normal in ROLE_TAGS else SHORT_FORMS.get(normal) or closest(normal, ROLE_TAGS)
    if role is not None:
        return role
    match = _SEPARATED.match(text)
    if match is None:
        return None
    head, rest = match.group(1).lower(), match.group(2).strip()
    prefix = head if head in PREFIXES else closest(head, PREFIXES)
    if prefix is None:
        return None
    if prefix in ("step", "block", "prev"):
        rest = re.sub(r"[^a-z0-9_]+", "_", rest.lower())
    return f"{prefix}:{rest}"
