"""Where the boxes, edges and edge labels of a DAG picture go: a layered (Sugiyama-style) layout.

Steps sit on rows by depth (a row's steps can run in parallel). An edge that skips rows passes through a
narrow placeholder on every row in between, so it never crosses a box; rows are reordered a few times by the
mean position of their neighbours (the barycenter heuristic) to untangle edges. Each edge label is put at
the first spot along its edge that overlaps no box and no other label; when there is none (a very dense
picture) the label is left out and the edge's tooltip still names its variables.

Text widths are estimated, conservatively, from the character count (no font metrics without a browser).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jupyter_ext.pipeline.dag import levels
from jupyter_ext.pipeline.model import Edge, Pipeline

FONT_SIZE = 12
CHAR_WIDTH = 7.0  # wider than the average advance of 12px sans-serif text, so estimates err on the safe side
BOLD_CHAR_WIDTH = 7.8
LABEL_HEIGHT = 15
LABEL_MAX_CHARS = 28
PLACEHOLDER_WIDTH = 12  # the slot an edge takes on a row it passes through
LABEL_POSITIONS = (0.5, 0.32, 0.68, 0.2, 0.8)  # where along an edge segment a label is tried, in order


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float

    def overlaps(self, other: Rect, margin: float = 0) -> bool:
        return not (
            self.x + self.width + margin <= other.x
            or other.x + other.width + margin <= self.x
            or self.y + self.height + margin <= other.y
            or other.y + other.height + margin <= self.y
        )

    def inside(self, other: Rect) -> bool:
        return (
            self.x >= other.x
            and self.y >= other.y
            and self.x + self.width <= other.x + other.width
            and self.y + self.height <= other.y + other.height
        )


@dataclass
class Route:
    edge: Edge
    points: list[
        tuple[float, float]
    ]  # leaves the source's bottom, passes placeholders, enters the target's top
    label: str = ""  # shortened variable list ("" for a prev: edge)
    label_box: Rect | None = None  # None: no room found, the label is left out


@dataclass
class Layout:
    width: float
    height: float
    boxes: dict[str, Rect] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)


def text_width(text: str, *, bold: bool = False) -> float:
    return len(text) * (BOLD_CHAR_WIDTH if bold else CHAR_WIDTH)


def fit(text: str, width: float, *, bold: bool = False) -> str:
    """``text``, cut with an ellipsis so that it fits ``width`` pixels."""
    if text_width(text, bold=bold) <= width:
        return text
    keep = max(int(width // (BOLD_CHAR_WIDTH if bold else CHAR_WIDTH)) - 1, 0)
    return text[:keep] + "…"


def edge_label(variables: list[str]) -> str:
    """The variables an edge carries, shortened to at most :data:`LABEL_MAX_CHARS` ("a, b +3")."""
    label = ""
    for i, name in enumerate(variables):
        candidate = f"{label}, {name}" if label else name
        rest = len(variables) - i - 1
        if len(candidate) + (len(f" +{rest}") if rest else 0) > LABEL_MAX_CHARS:
            return f"{label} +{len(variables) - i}" if label else fit(name, LABEL_MAX_CHARS * CHAR_WIDTH)
        label = candidate
    return label


def layout(
    pipeline: Pipeline,
    *,
    box_width: int = 170,
    box_height: int = 46,
    gap_x: int = 36,
    gap_y: int = 84,
    margin: int = 24,
) -> Layout:
    depends_on = {s.name: s.depends_on for s in pipeline.steps}
    depth = levels(depends_on, [s.name for s in pipeline.steps])
    rows: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for step in pipeline.steps:
        rows[depth[step.name]].append(step.name)
    chains: list[list[str]] = []
    for index, edge in enumerate(pipeline.edges):
        chain = [edge.source]
        for row in range(depth[edge.source] + 1, depth[edge.target]):
            placeholder = f"\0{index}:{row}"
            rows[row].append(placeholder)
            chain.append(placeholder)
        chains.append([*chain, edge.target])
    _untangle(rows, chains)

    def width_of(node: str) -> float:
        return PLACEHOLDER_WIDTH if node.startswith("\0") else box_width

    def row_width(row: list[str]) -> float:
        return sum(width_of(n) for n in row) + sum(
            _gap(a, b, gap_x) for a, b in zip(row, row[1:], strict=False)
        )

    widest = max((row_width(r) for r in rows), default=box_width)
    height = max(len(rows) * (box_height + gap_y) - gap_y, 0) + 2 * margin  # a plain notebook has no rows
    result = Layout(width=widest + 2 * margin, height=height)
    centre: dict[str, float] = {}
    for level, row in enumerate(rows):
        x = margin + (widest - row_width(row)) / 2
        for i, node in enumerate(row):
            if i:
                x += _gap(row[i - 1], node, gap_x)
            centre[node] = x + width_of(node) / 2
            if not node.startswith("\0"):
                result.boxes[node] = Rect(x, margin + level * (box_height + gap_y), box_width, box_height)
            x += width_of(node)
    top = {n: margin + lvl * (box_height + gap_y) for lvl, row in enumerate(rows) for n in row}
    ports = _ports(chains, centre, box_width)
    for index, (edge, chain) in enumerate(zip(pipeline.edges, chains, strict=True)):
        points = [(ports[index][0], top[edge.source] + box_height)]
        for placeholder in chain[1:-1]:
            points += [
                (centre[placeholder], top[placeholder]),
                (centre[placeholder], top[placeholder] + box_height),
            ]
        points.append((ports[index][1], top[edge.target]))
        result.routes.append(Route(edge, points, edge_label(edge.variables)))
    _place_labels(result)
    return result


def _gap(left: str, right: str, gap_x: int) -> float:
    """Room between neighbours on a row: full between boxes, less next to a passing edge."""
    return gap_x if not (left.startswith("\0") or right.startswith("\0")) else gap_x / 3


def _untangle(rows: list[list[str]], chains: list[list[str]], sweeps: int = 4) -> None:
    """Reorder each row by the mean position of its neighbours on the row above (then below), a few times."""
    above: dict[str, list[str]] = {}
    below: dict[str, list[str]] = {}
    for chain in chains:
        for upper, lower in zip(chain, chain[1:], strict=False):
            below.setdefault(upper, []).append(lower)
            above.setdefault(lower, []).append(upper)
    position = {node: i for row in rows for i, node in enumerate(row)}

    def reorder(row: list[str], neighbours: dict[str, list[str]]) -> None:
        def key(node: str) -> float:
            linked = neighbours.get(node)
            return sum(position[n] for n in linked) / len(linked) if linked else position[node]

        row.sort(key=key)  # stable: ties keep notebook order
        position.update({node: i for i, node in enumerate(row)})

    for _ in range(sweeps):
        for row in rows[1:]:
            reorder(row, above)
        for row in reversed(rows[:-1]):
            reorder(row, below)


def _ports(chains: list[list[str]], centre: dict[str, float], box_width: int) -> list[list[float]]:
    """Where each edge leaves its source and enters its target: spread along the box edge, in the order of
    the other ends, so that edges sharing a box do not start or end on one point."""
    ports = [[centre[c[0]], centre[c[-1]]] for c in chains]
    for end, other in ((0, 1), (-1, -2)):  # (leaving: this end, next node), (entering: last, previous)
        by_box: dict[str, list[int]] = {}
        for index, chain in enumerate(chains):
            by_box.setdefault(chain[end], []).append(index)
        for box, indices in by_box.items():
            indices.sort(key=lambda i: centre[chains[i][other]])
            spread = min(16.0, (box_width - 24) / max(len(indices) - 1, 1))
            for rank, index in enumerate(indices):
                ports[index][0 if end == 0 else 1] = centre[box] + (rank - (len(indices) - 1) / 2) * spread
    return ports


def curve_point(start: tuple[float, float], end: tuple[float, float], t: float) -> tuple[float, float]:
    """A point of the cubic curve drawn between two rows (vertical tangents at both ends)."""
    (x0, y0), (x3, y3) = start, end
    middle = (y0 + y3) / 2
    u = 1 - t
    x = u**3 * x0 + 3 * u * u * t * x0 + 3 * u * t * t * x3 + t**3 * x3
    y = u**3 * y0 + 3 * u * u * t * middle + 3 * u * t * t * middle + t**3 * y3
    return x, y


def _place_labels(result: Layout) -> None:
    taken: list[Rect] = []
    boxes = list(result.boxes.values())
    frame = Rect(0, 0, result.width, result.height)
    for route in result.routes:
        if not route.label:
            continue
        width = text_width(route.label) + 8
        # the curves between rows: the first (below the source) then the last (above the target)
        segments = [(route.points[0], route.points[1]), (route.points[-2], route.points[-1])]
        for start, end in segments[: 1 if len(route.points) == 2 else 2]:
            route.label_box = _free_spot(start, end, width, boxes, taken, frame)
            if route.label_box is not None:
                taken.append(route.label_box)
                break


def _free_spot(
    start: tuple[float, float],
    end: tuple[float, float],
    width: float,
    boxes: list[Rect],
    taken: list[Rect],
    frame: Rect,
) -> Rect | None:
    for t in LABEL_POSITIONS:
        x, y = curve_point(start, end, t)
        for dx in (0, width / 2 + 5, -width / 2 - 5):  # on the edge, then beside it
            spot = Rect(x + dx - width / 2, y - LABEL_HEIGHT / 2, width, LABEL_HEIGHT)
            if (
                spot.inside(frame)
                and not any(spot.overlaps(b, 3) for b in boxes)
                and not any(spot.overlaps(o, 6) for o in taken)  # apart enough to read as two
            ):
                return spot
    return None
