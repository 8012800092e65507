"""The pipeline model: a plain, serialisable description of what to run, independent of any backend.

Built from a notebook by :func:`jupyter_ext.pipeline.build.build_pipeline`; consumed by the local runner,
the KFP compiler and the Kubernetes manifests. ``to_dict``/``from_dict`` round-trip through JSON, which is
how a step's spec travels into a pod.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PARAMETER_TYPES = ("int", "float", "str", "bool", "list", "dict")


@dataclass
class SourceCell:
    """One code cell of the original notebook."""

    index: int  # 1-based position in the notebook (markdown cells counted), as shown in errors
    source: str  # the cell's code as written (magics included)
    tags: list[str] = field(default_factory=list)


@dataclass
class Parameter:
    name: str
    type: str  # one of PARAMETER_TYPES
    default: Any
    cell: int | None = None


@dataclass
class Secret:
    """A Kubernetes Secret key exposed to a step as an environment variable (never its value)."""

    secret: str
    key: str
    env: str


VOLUME_TYPES = ("pvc", "new_pvc", "pv")


@dataclass
class Volume:
    """A volume mounted into step pods (Kale's ``volumes``).

    ``type``: ``pvc`` mounts an existing PersistentVolumeClaim named ``pvc``; ``new_pvc`` creates a claim
    for the run (``size``, ``storage_class``, ``access_modes``, ``annotations``); ``pv`` creates a claim
    bound to the existing PersistentVolume named ``pvc``.
    """

    pvc: str
    mount_point: str
    expose_as_env_var: str | None = None  # the environment variable set to the mount point
    type: str = "pvc"
    size: str | None = None  # e.g. "5Gi": the storage a created claim requests
    storage_class: str | None = None
    access_modes: list[str] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class Step:
    name: str
    cells: list[SourceCell]
    inputs: list[str] = field(default_factory=list)  # variables read from upstream steps
    outputs: list[str] = field(default_factory=list)  # variables downstream steps read from this one
    parameters: list[str] = field(default_factory=list)  # pipeline parameters this step reads
    metrics: list[str] = field(default_factory=list)  # pipeline metrics this step produces
    depends_on: list[str] = field(default_factory=list)  # direct upstream steps (data and prev: edges)
    prev: list[str] = field(default_factory=list)  # explicit ordering from prev: tags
    limits: dict[str, str] = field(default_factory=dict)  # e.g. {"nvidia.com/gpu": "1", "memory": "4Gi"}
    image: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    cache: bool | None = None  # None: the pipeline default
    secrets: list[Secret] = field(default_factory=list)

    @property
    def first_cell(self) -> int:
        return self.cells[0].index if self.cells else 0


@dataclass
class Edge:
    source: str
    target: str
    variables: list[str] = field(default_factory=list)  # empty for a pure prev: ordering edge


@dataclass
class Pipeline:
    name: str
    notebook: str  # path of the notebook as given
    steps: list[Step]
    edges: list[Edge] = field(default_factory=list)
    prelude: list[SourceCell] = field(
        default_factory=list
    )  # imports + functions cells, run before every step
    parameters: list[Parameter] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    description: str = ""
    experiment: str | None = None
    image: str | None = None
    enable_caching: bool = True
    volumes: list[Volume] = field(default_factory=list)
    kernel: str = "python3"
    data: list[str] = field(default_factory=list)  # declared data paths (metadata.cellpipe.data, data: tags)
    # likely mistakes found by the analysis, as CellpipeWarning.to_dict(): message, cell, step, field, hint, text
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_plain(self) -> bool:
        """A notebook without any step tag: not a pipeline of steps but a notebook to run whole."""
        return not self.steps

    # -- lookups -------------------------------------------------------------------------------------
    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def parameter(self, name: str) -> Parameter:
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        raise KeyError(name)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.parameters}

    def downstream(self, name: str) -> list[str]:
        return [s.name for s in self.steps if name in s.depends_on]

    def step_cache(self, step: Step) -> bool:
        return self.enable_caching if step.cache is None else step.cache

    def for_step(self, name: str) -> Pipeline:
        """The part of the pipeline one step needs to run: its own cells, its incoming edges, the prelude
        and the parameters. What a pod receives, so its size does not grow with the pipeline."""
        from dataclasses import replace

        return replace(
            self, steps=[self.step(name)], edges=[e for e in self.edges if e.target == name], warnings=[]
        )

    # -- serialisation -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "is_plain": self.is_plain}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pipeline:
        data = dict(data)
        data.pop("is_plain", None)  # derived from the steps
        data["steps"] = [_step_from_dict(s) for s in data.get("steps", [])]
        data["edges"] = [Edge(**e) for e in data.get("edges", [])]
        data["prelude"] = [SourceCell(**c) for c in data.get("prelude", [])]
        data["parameters"] = [Parameter(**p) for p in data.get("parameters", [])]
        data["volumes"] = [Volume(**v) for v in data.get("volumes", [])]
        return cls(**data)


def _step_from_dict(data: dict[str, Any]) -> Step:
    data = dict(data)
    data["cells"] = [SourceCell(**c) for c in data.get("cells", [])]
    data["secrets"] = [Secret(**s) for s in data.get("secrets", [])]
    return Step(**data)
