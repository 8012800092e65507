"""Pictures of a pipeline for people: a layered text DAG for terminals, Graphviz DOT, and a standalone SVG."""

from __future__ import annotations

from html import escape

from jupyter_ext.pipeline.dag import levels
from jupyter_ext.pipeline.layout import FONT_SIZE, Rect, fit, layout
from jupyter_ext.pipeline.model import Pipeline, Step


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


def to_svg(pipeline: Pipeline, *, box_width: int = 170, box_height: int = 46) -> str:
    """A self-contained SVG of the DAG, top to bottom by depth (no Graphviz needed).

    Steps on one row can run in parallel; edge labels are the variables that flow along each edge (all of
    them in the edge's tooltip), dashed edges are prev:-only ordering. Each box shows the step's cells, or
    the metrics it reports. Layout: :mod:`jupyter_ext.pipeline.layout`.
    """
    placed = layout(pipeline, box_width=box_width, box_height=box_height)
    width, height = round(placed.width), round(placed.height)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="sans-serif" font-size="{FONT_SIZE}">',
        f"<title>{escape(pipeline.name)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
    ]
    for route in placed.routes:  # edges first: boxes and labels are drawn over them
        edge = route.edge
        what = ", ".join(edge.variables) if edge.variables else "order only (prev:)"
        dash = "" if edge.variables else ' stroke-dasharray="5,4"'
        out.append(
            f'<g class="edge"><title>{escape(f"{edge.source} -> {edge.target}: {what}")}</title>'
            f'<path d="{_path(route.points)}" fill="none" stroke="#555"{dash} marker-end="url(#arrow)"/></g>'
        )
    for route in placed.routes:
        if route.label_box is None:
            continue
        box = route.label_box
        out.append(
            f'<g class="edge-label"><rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" '
            f'height="{box.height:.1f}" rx="3" fill="#fff" fill-opacity="0.92"/>'
            f'<text x="{box.x + box.width / 2:.1f}" y="{box.y + box.height - 4:.1f}" text-anchor="middle" '
            f'fill="#335">{escape(route.label)}</text></g>'
        )
    for step in pipeline.steps:
        out.append(_step_box(step, placed.boxes[step.name]))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _path(points: list[tuple[float, float]]) -> str:
    """Curves between rows (vertical at both ends), straight lines through the rows an edge passes."""
    (x, y), *rest = points
    parts = [f"M {x:.1f} {y:.1f}"]
    for i, (x2, y2) in enumerate(rest):
        x1, y1 = points[i]
        if i % 2 == 0:  # between two rows
            middle = (y1 + y2) / 2
            parts.append(f"C {x1:.1f} {middle:.1f}, {x2:.1f} {middle:.1f}, {x2:.1f} {y2:.1f}")
        else:  # through a row, beside its boxes
            parts.append(f"L {x2:.1f} {y2:.1f}")
    return " ".join(parts)


def _step_box(step: Step, box: Rect) -> str:
    gpu = any(k.endswith("/gpu") for k in step.limits)
    fill = "#fff3e0" if gpu else "#eef4ff"
    detail = (
        f"metrics: {', '.join(step.metrics)}" if step.metrics else cells_text([c.index for c in step.cells])
    )
    tooltip = f"{step.name}: {cells_text([c.index for c in step.cells])}"
    if step.metrics:
        tooltip += f"; metrics {', '.join(step.metrics)}"
    if step.limits:
        tooltip += "; " + ", ".join(f"{k}={v}" for k, v in step.limits.items())
    room = box.width - 12
    x, y = box.x + box.width / 2, box.y + box.height / 2
    return (
        f'<g class="step"><title>{escape(tooltip)}</title>'
        f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" height="{box.height:.1f}" rx="8" '
        f'fill="{fill}" stroke="#4a6fa5"/>'
        f'<text x="{x:.1f}" y="{y - 3:.1f}" text-anchor="middle" font-weight="bold">'
        f"{escape(fit(step.name, room, bold=True))}</text>"
        f'<text x="{x:.1f}" y="{y + 13:.1f}" text-anchor="middle" fill="#666">{escape(fit(detail, room))}</text></g>'
    )


def cells_text(cells: list[int]) -> str:
    """``cell 8``, ``cells 3-5`` or ``cells 3, 5, 9``: the notebook cells a step is made of."""
    if len(cells) == 1:
        return f"cell {cells[0]}"
    if cells == list(range(cells[0], cells[0] + len(cells))):
        return f"cells {cells[0]}-{cells[-1]}"
    return f"cells {', '.join(str(c) for c in cells)}"
