import os
import random
import stat
import xml.etree.ElementTree as ET

import pytest

from jupyter_ext.cli.main import main
from jupyter_ext.pipeline.build import build_pipeline
from jupyter_ext.pipeline.layout import CHAR_WIDTH, Rect, curve_point, edge_label, layout
from jupyter_ext.pipeline.render import cells_text, text_dag, to_dot, to_svg

SVG = "{http://www.w3.org/2000/svg}"


def test_text_dag_puts_parallel_steps_on_one_line(notebooks):
    assert text_dag(build_pipeline(notebooks / "branches.ipynb")) == [
        "[0] make_data", "[1] stats   histogram", "[2] report",
    ]  # fmt: skip


def test_dot_labels_edges_with_variables_and_dashes_prev_edges(notebooks):
    dot = to_dot(build_pipeline(notebooks / "kale_legacy.ipynb"))
    assert '"area" -> "ratio" [label="area_rounded"];' in dot
    assert '"area" -> "perimeter" [label="", style="dashed"];' in dot
    assert 'label="ratio\\ncpu=1, memory=512Mi"' in dot


def test_svg_is_a_picture_of_the_dag(notebooks, tmp_path, capsys):
    pipeline = build_pipeline(notebooks / "wine_classifier.ipynb")
    root = ET.fromstring(to_svg(pipeline))
    assert root.tag == f"{SVG}svg"
    assert len(root.findall(f"{SVG}g[@class='step']")) == len(pipeline.steps)
    assert len(root.findall(f"{SVG}g[@class='edge']")) == len(pipeline.edges)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"load_data", "split", "train", "evaluate", "X_test, y_test", "metrics: accuracy, f1"} <= set(
        texts
    )
    # the CLI writes the same picture, says so, and gives it the mode any file the user writes gets
    out = tmp_path / "dag.svg"
    old_umask = os.umask(0o022)
    try:
        assert main(["inspect", str(notebooks / "wine_classifier.ipynb"), "--svg", str(out)]) == 0
    finally:
        os.umask(old_umask)
    assert ET.parse(out).getroot().tag == f"{SVG}svg"
    assert f"wrote {out} (SVG picture of 4 steps)" in capsys.readouterr().out
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_svg_escapes_names(write_notebook):
    pipeline = build_pipeline(
        write_notebook([(["step:a"], "x = 1")], metadata={"cellpipe": {"pipeline_name": "<a&b>"}})
    )
    assert "<title>&lt;a&amp;b&gt;</title>" in to_svg(pipeline)


def dense_notebook(write_notebook, steps: int, seed: int = 1):
    """Steps reading one to three earlier steps (any of them: edges skip many rows), long names, metrics."""
    rng = random.Random(seed)
    cells = [(["parameters"], "scale = 2")]
    for i in range(steps):
        reads = sorted(rng.sample(range(i), min(i, rng.choice([1, 1, 2, 3])))) if i else []
        expr = " + ".join(f"value_{j} + extra_{j}" for j in reads) or "scale"
        name = f"step_{i:03d}_with_a_rather_long_name" if i % 5 == 0 else f"step_{i:03d}"
        cells.append(([f"step:{name}"], f"value_{i} = {expr}\nextra_{i} = 1\naccuracy_of_model_{i} = 0.5"))
    cells.append((["pipeline-metrics"], "\n".join(f"accuracy_of_model_{i}" for i in range(steps - 3, steps))))
    return build_pipeline(write_notebook(cells))


def rect(element) -> Rect:
    return Rect(*(float(element.get(k)) for k in ("x", "y", "width", "height")))


@pytest.mark.parametrize("steps", [10, 100])
def test_svg_stays_clean_at_10_and_100_steps(write_notebook, steps):
    pipeline = dense_notebook(write_notebook, steps)
    root = ET.fromstring(to_svg(pipeline))
    boxes = [rect(g.find(f"{SVG}rect")) for g in root.findall(f"{SVG}g[@class='step']")]
    labels = [rect(g.find(f"{SVG}rect")) for g in root.findall(f"{SVG}g[@class='edge-label']")]
    assert len(boxes) == steps and len(labels) >= len(pipeline.edges) * 0.8  # nearly every edge is labelled
    frame = Rect(0, 0, float(root.get("width")), float(root.get("height")))
    for i, label in enumerate(labels):
        assert label.inside(frame)
        assert not any(label.overlaps(box) for box in boxes), "a label under a box"
        assert not any(label.overlaps(other) for other in labels[i + 1 :]), "labels overlap"
    for group in root.findall(f"{SVG}g[@class='step']"):
        box = rect(group.find(f"{SVG}rect"))
        for text in group.findall(f"{SVG}text"):  # centred text, its estimated width inside the box
            assert len(text.text) * CHAR_WIDTH <= box.width - 10, text.text


def test_edges_never_cross_a_box(write_notebook):
    pipeline = dense_notebook(write_notebook, 40, seed=7)
    placed = layout(pipeline)
    skipping = 0
    for route in placed.routes:
        others = [b for name, b in placed.boxes.items() if name not in (route.edge.source, route.edge.target)]
        skipping += len(route.points) > 2
        for i in range(0, len(route.points) - 1, 2):  # the curves between rows
            for t in (0.1 * k for k in range(11)):
                x, y = curve_point(route.points[i], route.points[i + 1], t)
                assert not any(b.x < x < b.x + b.width and b.y < y < b.y + b.height for b in others)
        for i in range(1, len(route.points) - 1, 2):  # the straight runs beside a row's boxes
            (x, y1), (_, y2) = route.points[i], route.points[i + 1]
            assert not any(b.x < x < b.x + b.width for b in others if b.y < y2 and y1 < b.y + b.height)
    assert skipping > 10  # the picture does have edges that skip rows


def test_box_details_read_naturally():
    assert cells_text([8]) == "cell 8"
    assert cells_text([3, 4, 5]) == "cells 3-5"
    assert cells_text([3, 5, 9]) == "cells 3, 5, 9"
    assert edge_label(["a", "b"]) == "a, b"
    assert edge_label([f"variable_{i}" for i in range(6)]) == "variable_0, variable_1 +4"
