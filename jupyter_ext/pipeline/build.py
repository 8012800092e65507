"""Notebook -> pipeline model: the tags say where steps are, the code says how data flows between them.

:func:`build_pipeline` is the one entry point. It reads the notebook, groups cells into the prelude
(imports/functions), the parameters and metrics cells and the steps, then analyses each step's code:
a step depends on the latest earlier step that produces each name it reads; ``prev:`` adds ordering.

A notebook without any step tag is a *plain* notebook (``Pipeline.is_plain``): no steps, run whole.
Likely mistakes that do not stop the analysis (tag typos, code cells before the first step, Kale features
cellpipe ignores) become ``Pipeline.warnings``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_ext.errors import CellpipeWarning, NotebookError
from jupyter_ext.notebook import params as params_mod
from jupyter_ext.notebook.names import KERNEL_NAMES, NameUsage, analyse, free_variables
from jupyter_ext.notebook.read import kernel_name, read_notebook
from jupyter_ext.notebook.settings import MAX_PIPELINE_NAME, NotebookSettings, read_settings
from jupyter_ext.notebook.source import collector_paused, parse
from jupyter_ext.notebook.tags import CellTags, parse_cell_tags
from jupyter_ext.pipeline.dag import find_cycle, topological_order
from jupyter_ext.pipeline.model import Edge, Parameter, Pipeline, SourceCell, Step


@dataclass
class _Draft:
    """A step while cells are being collected."""

    step: Step
    position: int  # order of appearance
    usage: NameUsage = field(default_factory=NameUsage)
    read_cell: dict[str, int] = field(default_factory=dict)  # name -> cell that first reads it


def build_pipeline(
    path: str | Path, *, content: bytes | str | None = None, name: str | None = None, label: str | None = None
) -> Pipeline:
    """Analyse a tagged notebook into a :class:`Pipeline`. ``content`` replaces the file (unsaved edits).

    ``label`` names the notebook in the pipeline, its errors and warnings (default: ``path``), e.g. the path
    relative to a server's root, which a client may see where the absolute one would leak.
    """
    notebook_name = label or str(path)
    notebook = read_notebook(path, content=content, label=notebook_name)
    settings = read_settings(notebook.get("metadata", {}), notebook=notebook_name)
    collector = _Collector(notebook_name, settings)
    with collector_paused():  # each cell's syntax tree is dropped after its analysis, inside the pause
        for index, cell in enumerate(notebook.cells, start=1):
            if cell.cell_type == "code":
                collector.add(index, cell.source, list(cell.get("metadata", {}).get("tags", [])))
    return collector.finish(name=name, kernel=kernel_name(notebook), settings=settings)


class _Collector:
    def __init__(self, notebook: str, settings: NotebookSettings) -> None:
        self.notebook = notebook
        self.settings = settings
        self.defaults = (
            parse_cell_tags(settings.steps_defaults, notebook=notebook, cell=0)
            if settings.steps_defaults
            else None
        )
        self.drafts: dict[str, _Draft] = {}
        self.current: list[str] = []  # steps that untagged cells join
        self.current_role: str | None = None  # imports/functions continue onto untagged cells (Kale)
        self.prelude: list[SourceCell] = []
        self.parameters: list[Parameter] = []
        self.parameters_cell: int | None = None
        self.metrics: list[tuple[str, int]] = []
        self.data: list[str] = list(settings.data)
        self.prev: list[tuple[str, str, int]] = []  # (step, prev, cell)
        self.warnings: list[CellpipeWarning] = list(settings.warnings)
        self.leading: list[int] = []  # code cells before the first step: left out of the pipeline
        self.leading_settings: list[int] = []  # ... of which carry step settings (limit:, prev:...)
        self.unimplemented: dict[str, list[int]] = {}  # Kale tag prefix -> cells
        for ignored in self.defaults.ignored if self.defaults else []:
            what = (
                f"did you mean '{ignored.suggestion}'?"
                if ignored.suggestion
                else "a Kale setting cellpipe does not implement"
            )
            self.warnings.append(
                CellpipeWarning(
                    f"'{ignored.tag}' is ignored",
                    notebook=notebook,
                    field="metadata steps_defaults",
                    hint=what,
                )
            )

    # -- collecting cells --------------------------------------------------------------------------
    def add(self, index: int, source: str, tags: list[str]) -> None:
        parsed = parse_cell_tags(tags, notebook=self.notebook, cell=index)
        self._note_ignored(index, parsed)
        self.data.extend(parsed.data)
        role = parsed.role
        if role == "skip":
            return
        if role == "parameters":
            self._parameters(index, source)
        elif role == "metrics":
            self.metrics.extend((n, index) for n in self._metric_names(index, source))
        elif role in ("imports", "functions"):
            self.current_role = role
            self.prelude.append(SourceCell(index=index, source=source, tags=tags))
        elif parsed.steps:
            self._start_steps(index, parsed)
            self._append(index, source, tags, parsed)
        elif self.current_role in ("imports", "functions") and not parsed.step_settings:
            self.prelude.append(SourceCell(index=index, source=source, tags=tags))
        elif self.current:
            self._append(index, source, tags, parsed)
        elif _has_code(source) or parsed.step_settings:
            self.leading.append(index)
            if parsed.step_settings:
                self.leading_settings.append(index)

    def _note_ignored(self, index: int, parsed: CellTags) -> None:
        for ignored in parsed.ignored:
            if ignored.unimplemented:
                self.unimplemented.setdefault(ignored.unimplemented, []).append(index)
                continue
            self.warnings.append(
                CellpipeWarning(
                    "not a cellpipe tag, ignored",
                    notebook=self.notebook,
                    cell=index,
                    field=f"tag '{ignored.tag}'",
                    hint=f"did you mean '{ignored.suggestion}'?",
                )
            )

    def _parameters(self, index: int, source: str) -> None:
        if self.parameters_cell is not None:
            raise NotebookError(
                f"second parameters cell (the first is cell {self.parameters_cell})",
                notebook=self.notebook,
                cell=index,
                hint="keep all parameters in one cell tagged 'parameters' or 'pipeline-parameters'",
            )
        self.parameters_cell = index
        self.parameters = params_mod.parse_parameters_cell(source, notebook=self.notebook, cell=index)

    def _metric_names(self, index: int, source: str) -> list[str]:
        tree = self._parse(index, source)
        names: list[str] = []
        for stmt in tree.body:
            value = stmt.value if isinstance(stmt, ast.Expr) else None
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "print":
                args = value.args
            else:
                args = [value]
            if not args or not all(isinstance(a, ast.Name) for a in args):
                raise NotebookError(
                    f"pipeline-metrics cell line {stmt.lineno} is not a variable name",
                    notebook=self.notebook,
                    cell=index,
                    hint="list the metric variables one per line, e.g. 'accuracy'; compute them in a step",
                )
            names.extend(a.id for a in args)
        return names

    def _start_steps(self, index: int, parsed: CellTags) -> None:
        for step_name in parsed.steps:
            draft = self.drafts.get(step_name)
            if draft is not None and step_name not in self.current:
                raise NotebookError(
                    f"step '{step_name}' is tagged again (it starts at cell {draft.step.first_cell})",
                    notebook=self.notebook,
                    cell=index,
                    hint="a step is one run of consecutive cells: rename one of them or move the cells together",
                )
            if draft is None:
                self.drafts[step_name] = _Draft(
                    step=Step(name=step_name, cells=[]), position=len(self.drafts)
                )
                if self.defaults:
                    _apply_settings(self.drafts[step_name].step, self.defaults)
        self.current = list(parsed.steps)
        self.current_role = None

    def _append(self, index: int, source: str, tags: list[str], parsed: CellTags) -> None:
        tree = self._parse(index, source)
        for step_name in self.current:
            draft = self.drafts[step_name]
            draft.step.cells.append(SourceCell(index=index, source=source, tags=tags))
            _apply_settings(draft.step, parsed)
            self.prev.extend((step_name, p, index) for p in parsed.prev)
            before = set(draft.usage.reads)
            analyse(tree, draft.usage)
            for read in draft.usage.reads:
                if read not in before:
                    draft.read_cell.setdefault(read, index)

    def _parse(self, index: int, source: str) -> ast.Module:
        try:
            return parse(source)
        except SyntaxError as exc:
            raise NotebookError(
                f"syntax error at line {exc.lineno}: {exc.msg}",
                notebook=self.notebook,
                cell=index,
                hint="fix the code, or tag the cell 'skip'",
            ) from None

    # -- analysis ----------------------------------------------------------------------------------
    def finish(self, *, name: str | None, kernel: str, settings: NotebookSettings) -> Pipeline:
        self._warn_unimplemented_tags()
        if not self.drafts:
            return self._pipeline([], [], name=name, kernel=kernel, settings=settings)  # a plain notebook
        self._warn_leading_cells()
        prelude_names, prelude_free, star = self._prelude()
        param_names = {p.name for p in self.parameters}
        ordered = sorted(self.drafts.values(), key=lambda d: d.position)
        edges: dict[tuple[str, str], Edge] = {}
        latest: dict[str, _Draft] = {}  # name -> the latest step so far that produces it
        for i, draft in enumerate(ordered):
            step = draft.step
            for read in self._reads_with_functions(draft, prelude_free):
                producer = latest.get(read)
                if producer is not None:
                    edge = edges.setdefault(
                        (producer.step.name, step.name), Edge(producer.step.name, step.name)
                    )
                    edge.variables.append(read)
                elif read in param_names:
                    step.parameters.append(read)
                elif not (
                    read in prelude_names
                    or read in KERNEL_NAMES
                    or read in draft.usage.produces
                    or star  # `from x import *` (prelude or this step) may define anything
                    or draft.usage.star_import
                ):
                    self._undefined(draft, read, ordered[i + 1 :])
            latest.update(dict.fromkeys(draft.usage.produces, draft))
        steps = {d.step.name: d.step for d in ordered}
        for edge in edges.values():
            steps[edge.target].inputs.extend(v for v in edge.variables if v not in steps[edge.target].inputs)
            steps[edge.source].outputs.extend(
                v for v in edge.variables if v not in steps[edge.source].outputs
            )
            steps[edge.target].depends_on.append(edge.source)
        self._add_prev_edges(steps, edges)
        self._assign_metrics(ordered)
        order = self._order(steps, ordered)
        return self._pipeline(
            [steps[n] for n in order], list(edges.values()), name=name, kernel=kernel, settings=settings
        )

    def _pipeline(
        self,
        steps: list[Step],
        edges: list[Edge],
        *,
        name: str | None,
        kernel: str,
        settings: NotebookSettings,
    ) -> Pipeline:
        return Pipeline(
            name=name or settings.pipeline_name or pipeline_name_for(self.notebook),
            notebook=self.notebook,
            steps=steps,
            edges=edges,
            prelude=self.prelude,
            parameters=self.parameters,
            metrics=[m for m, _ in self.metrics],
            description=settings.description,
            experiment=settings.experiment,
            image=settings.image,
            enable_caching=settings.enable_caching,
            volumes=settings.volumes,
            kernel=kernel,
            data=self.data,
            # notebook settings first, then in cell order, as the user reads the notebook
            warnings=[w.to_dict() for w in sorted(self.warnings, key=lambda w: w.cell or 0)],
        )

    def _warn_leading_cells(self) -> None:
        """Kale leaves untagged cells above the first step out of the pipeline; so do we, but say so."""
        if not self.leading:
            return
        many = len(self.leading) > 1
        self.warnings.append(
            CellpipeWarning(
                f"code {_cells_text(self.leading)} come before the first step and are left out of the pipeline"
                if many
                else "this code cell comes before the first step and is left out of the pipeline",
                notebook=self.notebook,
                cell=self.leading[0],
                hint="tag each such cell 'skip' to confirm, or step:NAME, imports or functions to include it",
            )
        )
        for index in self.leading_settings:
            self.warnings.append(
                CellpipeWarning(
                    "step settings (prev:, limit:, image:, ...) on a cell before the first step are ignored",
                    notebook=self.notebook,
                    cell=index,
                    hint="move the tags to the cell that starts the step (the one tagged step:NAME)",
                )
            )

    def _warn_unimplemented_tags(self) -> None:
        from jupyter_ext.notebook.tags import KALE_UNIMPLEMENTED

        for prefix, cells in self.unimplemented.items():
            self.warnings.append(
                CellpipeWarning(
                    f"a Kale tag cellpipe does not implement ({KALE_UNIMPLEMENTED[prefix]}), ignored in "
                    f"{_cells_text(cells)}",
                    notebook=self.notebook,
                    cell=cells[0],
                    field=f"tag '{prefix}:'",
                    hint="remove the tag; the rest of the cell works as before",
                )
            )

    def _prelude(self) -> tuple[set[str], dict[str, set[str]], bool]:
        """Names the prelude defines, and each prelude function's free variables (its hidden reads)."""
        usage = NameUsage()
        functions: dict[str, set[str]] = {}
        for cell in self.prelude:
            tree = self._parse(cell.index, cell.source)
            analyse(tree, usage)
            for node in tree.body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    functions[node.name] = free_variables(node)
        names = usage.defines
        free = {fn: {n for n in reads if n not in KERNEL_NAMES} for fn, reads in functions.items()}
        return names, free, usage.star_import

    @staticmethod
    def _reads_with_functions(draft: _Draft, prelude_free: dict[str, set[str]]) -> list[str]:
        """A step's reads plus the free variables of the prelude functions it calls, transitively."""
        reads = list(draft.usage.reads)
        seen = set(reads)
        queue = [r for r in reads if r in prelude_free]
        called = set(queue)
        while queue:
            function = queue.pop()
            for name in sorted(prelude_free[function]):
                if name in prelude_free:
                    if name not in called:
                        called.add(name)
                        queue.append(name)
                elif name not in seen:
                    seen.add(name)
                    reads.append(name)
                    draft.read_cell.setdefault(name, draft.read_cell.get(function, draft.step.first_cell))
        return reads

    def _undefined(self, draft: _Draft, read: str, later: list[_Draft]) -> None:
        cell = draft.read_cell.get(read, draft.step.first_cell)
        definer = next((d for d in later if read in d.usage.produces), None)
        if definer is not None:
            raise NotebookError(
                f"'{read}' is read before it is defined (it is defined later, in step '{definer.step.name}' "
                f"at cell {definer.step.first_cell})",
                notebook=self.notebook,
                cell=cell,
                step=draft.step.name,
                hint="move the definition to an earlier step",
            )
        raise NotebookError(
            f"name '{read}' is read but never defined",
            notebook=self.notebook,
            cell=cell,
            step=draft.step.name,
            hint="define it in an earlier step, import it in an 'imports' cell, or make it a parameter",
        )

    def _add_prev_edges(self, steps: dict[str, Step], edges: dict[tuple[str, str], Edge]) -> None:
        for step_name, prev, cell in self.prev:
            if prev not in steps:
                raise NotebookError(
                    f"prev:{prev} names an unknown step",
                    notebook=self.notebook,
                    cell=cell,
                    step=step_name,
                    hint=f"known steps: {', '.join(steps)}",
                )
            step = steps[step_name]
            if prev not in step.prev:
                step.prev.append(prev)
            if prev not in step.depends_on:
                step.depends_on.append(prev)
                edges.setdefault((prev, step_name), Edge(prev, step_name))

    def _assign_metrics(self, ordered: list[_Draft]) -> None:
        parameters = {p.name: p for p in self.parameters}
        for metric, cell in self.metrics:
            producer = next((d for d in reversed(ordered) if metric in d.usage.produces), None)
            if producer is None and metric in parameters:
                # Kale reports a parameter listed as a metric: the last step reports its value
                self._check_parameter_metric(parameters[metric], cell)
                producer = ordered[-1]
                if metric not in producer.step.parameters:
                    producer.step.parameters.append(metric)
            if producer is None:
                raise NotebookError(
                    f"metric '{metric}' is not defined by any step",
                    notebook=self.notebook,
                    cell=cell,
                    hint="compute it in a step, or remove it from the pipeline-metrics cell",
                )
            if metric not in producer.step.metrics:
                producer.step.metrics.append(metric)

    def _check_parameter_metric(self, parameter: Parameter, cell: int) -> None:
        if parameter.type not in ("int", "float"):
            raise NotebookError(
                f"metric '{parameter.name}' is a {parameter.type} parameter; metrics are numbers",
                notebook=self.notebook,
                cell=cell,
                hint="remove it from the pipeline-metrics cell (parameters are recorded with every run anyway)",
            )

    def _order(self, steps: dict[str, Step], ordered: list[_Draft]) -> list[str]:
        depends_on = {name: step.depends_on for name, step in steps.items()}
        cycle = find_cycle(depends_on)
        if cycle:
            first = steps[cycle[0]]
            raise NotebookError(
                f"the steps form a cycle: {' -> '.join(cycle)}",
                notebook=self.notebook,
                cell=first.first_cell,
                hint="a prev: tag points to a step that itself runs later; remove or reverse it",
            )
        return topological_order(depends_on, {d.step.name: d.position for d in ordered})


def _apply_settings(step: Step, parsed: CellTags) -> None:
    step.limits.update(parsed.limits)
    step.annotations.update(parsed.annotations)
    step.labels.update(parsed.labels)
    step.image = parsed.image or step.image
    step.cache = parsed.cache if parsed.cache is not None else step.cache
    step.secrets.extend(s for s in parsed.secrets if s not in step.secrets)


def _cells_text(cells: list[int]) -> str:
    return f"cell {cells[0]}" if len(cells) == 1 else f"cells {', '.join(str(c) for c in cells)}"


def _has_code(source: str) -> bool:
    return any(line.strip() and not line.strip().startswith("#") for line in source.splitlines())


def pipeline_name_for(notebook: str) -> str:
    """A pipeline name from the notebook's file name: lowercase, words joined by '-'."""
    stem = Path(notebook).stem.lower()
    return re.sub(r"[^a-z0-9]+", "-", stem).strip("-")[:MAX_PIPELINE_NAME].strip("-") or "pipeline"
