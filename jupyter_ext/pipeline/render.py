"""Pictures of a pipeline for people: a layered text DAG for terminals, Graphviz DOT for documents."""

from __future__ import annotations

from jupyter_ext.pipeline.dag import levels
from jupyter_ext.pipeline.model import Pipeline


def text_dag(pipeline: Pipeline) -> list[str]:
    """One line per level; steps on the same line can run in parallel. Arrows list where inputs come from."""
    depends_on = {s.name: s.depends_on for s in pipeline.steps}
    depth = levels(depends_on, [s.name for s in pipeline.steps])
    lines = []
    for level in range(max(depth.values(), default=-1) + 1):
        names = [s.name for s in pipeline.steps if depth[s.name] == level]
        lines.append(f"[{level}] " + "   ".join(names))
    return lines


def to_dot(pipeline: Pipeline) -> str:
    """Graphviz DOT: steps as boxes, edges labelled with the variables that flow along them."""
    out = [
        f'digraph "{pipeline.name}" {{',
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fillcolor="#eef4ff"];',
    ]
    for step in pipeline.steps:
        extra = f"\\n{', '.join(f'{k}={v}' for k, v in step.limits.items())}" if step.limits else ""
        out.append(f'  "{step.name}" [label="{step.name}{extra}"];')
    for edge in pipeline.edges:
        label = ", ".join(edge.variables)
        style = ', style="dashed"' if not edge.variables else ""
        out.append(f'  "{edge.source}" -> "{edge.target}" [label="{label}"{style}];')
    out.append("}")
    return "\n".join(out) + "\n"
