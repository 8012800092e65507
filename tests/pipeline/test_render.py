import xml.etree.ElementTree as ET

from jupyter_ext.cli.main import main
from jupyter_ext.pipeline.build import build_pipeline
from jupyter_ext.pipeline.render import text_dag, to_dot, to_svg

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


def test_svg_is_a_picture_of_the_dag(notebooks, tmp_path):
    pipeline = build_pipeline(notebooks / "wine_classifier.ipynb")
    root = ET.fromstring(to_svg(pipeline))
    assert root.tag == f"{SVG}svg"
    assert len(root.findall(f"{SVG}rect")) == len(pipeline.steps)
    assert len(root.findall(f"{SVG}path")) == len(pipeline.edges)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"load_data", "split", "train", "evaluate", "X_test, y_test", "accuracy, f1"} <= set(texts)
    # the CLI writes the same picture
    out = tmp_path / "dag.svg"
    assert main(["inspect", str(notebooks / "wine_classifier.ipynb"), "--svg", str(out)]) == 0
    assert ET.parse(out).getroot().tag == f"{SVG}svg"


def test_svg_escapes_names(write_notebook):
    pipeline = build_pipeline(
        write_notebook([(["step:a"], "x = 1")], metadata={"cellpipe": {"pipeline_name": "<a&b>"}})
    )
    assert "<title>&lt;a&amp;b&gt;</title>" in to_svg(pipeline)
