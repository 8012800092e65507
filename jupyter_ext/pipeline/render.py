"""Pictures of a pipeline for people: a layered text DAG for terminals, Graphviz DOT, and a standalone SVG."""

from __future__ import annotations

from html import escape

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


def to_svg(
    pipeline: Pipeline, *, box_width: int = 150, box_height: int = 44, gap_x: int = 40, gap_y: int = 70
) -> str:
    """A self-contained SVG of the DAG, top to bottom by level (no Graphviz needed).

    Steps on one row can run in parallel; edge labels are the variables that flow along each edge, dashed
    edges are prev:-only ordering.
    """
    depends_on = {s.name: s.depends_on for s in pipeline.steps}
    depth = levels(depends_on, [s.name for s in pipeline.steps])
    rows: dict[int, list[str]] = {}
    for step in pipeline.steps:
        rows.setdefault(depth[step.name], []).append(step.name)
    widest = max((len(r) for r in rows.values()), default=1)
    width = widest * (box_width + gap_x) + gap_x + box_width  # room on the right for edges that skip levels
    height = len(rows) * (box_height + gap_y) + gap_y
    centre: dict[str, tuple[float, float]] = {}
    for level, names in rows.items():
        offset = (width - box_width - len(names) * (box_width + gap_x) + gap_x) / 2
        for i, name in enumerate(names):
            centre[name] = (
                offset + i * (box_width + gap_x) + box_width / 2,
                gap_y + level * (box_height + gap_y) + box_height / 2,
            )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="sans-serif" font-size="12">',
        f"<title>{escape(pipeline.name)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
    ]
    for edge in pipeline.edges:
        (x1, y1), (x2, y2) = centre[edge.source], centre[edge.target]
        dash = "" if edge.variables else ' stroke-dasharray="5,4"'
        if depth[edge.target] - depth[edge.source] > 1:
            # skips a level: from side to side, bending out to the right of the boxes in between
            x1, x2 = x1 + box_width / 2, x2 + box_width / 2
            bend = max(x1, x2) + gap_x * 1.5
            path = f"M {x1:.0f} {y1:.0f} C {bend:.0f} {y1:.0f}, {bend:.0f} {y2:.0f}, {x2:.0f} {y2:.0f}"
            label_x, label_y = bend - gap_x / 4, (y1 + y2) / 2
        else:
            y1, y2 = y1 + box_height / 2, y2 - box_height / 2
            path = f"M {x1:.0f} {y1:.0f} L {x2:.0f} {y2:.0f}"
            label_x, label_y = (x1 + x2) / 2 + 4, (y1 + y2) / 2
        out.append(f'<path d="{path}" fill="none" stroke="#555"{dash} marker-end="url(#arrow)"/>')
        if edge.variables:
            label = escape(", ".join(edge.variables))
            out.append(f'<text x="{label_x:.0f}" y="{label_y:.0f}" fill="#335">{label}</text>')
    for step in pipeline.steps:
        x, y = centre[step.name]
        gpu = any(k.endswith("/gpu") for k in step.limits)
        fill = "#fff3e0" if gpu else "#eef4ff"
        out.append(
            f'<rect x="{x - box_width / 2:.0f}" y="{y - box_height / 2:.0f}" width="{box_width}" height="{box_height}" '
            f'rx="8" fill="{fill}" stroke="#4a6fa5"/>'
        )
        out.append(
            f'<text x="{x:.0f}" y="{y - 2:.0f}" text-anchor="middle" font-weight="bold">{escape(step.name)}</text>'
        )
        detail = (
            ", ".join(step.metrics)
            if step.metrics
            else f"cells {', '.join(str(c.index) for c in step.cells)}"
        )
        out.append(
            f'<text x="{x:.0f}" y="{y + 13:.0f}" text-anchor="middle" fill="#666">{escape(detail)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
