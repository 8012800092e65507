"""The example notebooks run green with ``cellpipe run`` (real kernels), offline: as pipelines, or whole.

Each is copied to a temporary directory first, so a run never writes next to the repository's copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from jupyter_ext.cli.main import main
from jupyter_ext.pipeline.build import build_pipeline

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).parents[2] / "examples"


def run_example(name: str, tmp_path: Path, capsys, *params: str) -> dict:
    notebook = shutil.copy(EXAMPLES / name, tmp_path / name)
    args = ["run", str(notebook), "--no-track", "--json"]
    for param in params:
        args += ["-p", param]
    code = main(args)
    out = capsys.readouterr().out
    record = json.loads(out[out.index("{") :])
    assert code == 0, record.get("error") or record
    assert record["status"] == "succeeded"
    assert all(step["status"] == "succeeded" for step in record["steps"])
    record["steps"] = {step["name"]: step for step in record["steps"]}  # pipeline order, by name
    return record


def parallel_steps(name: str) -> set[frozenset[str]]:
    """Pairs of steps neither of which depends (even indirectly) on the other."""
    pipeline = build_pipeline(EXAMPLES / name)
    upstream: dict[str, set[str]] = {}
    for step in pipeline.steps:  # pipeline order is topological
        upstream[step.name] = set(step.depends_on).union(*(upstream[u] for u in step.depends_on))
    names = [s.name for s in pipeline.steps]
    return {
        frozenset((a, b))
        for a in names
        for b in names
        if a < b and a not in upstream[b] and b not in upstream[a]
    }


def test_tabular_classifier_trains_two_models_in_parallel(tmp_path, data_dir, capsys):
    assert parallel_steps("tabular_classifier.ipynb") == {frozenset({"train_logistic", "train_boosting"})}
    record = run_example("tabular_classifier.ipynb", tmp_path, capsys, "boosting_rounds=30")
    assert list(record["steps"]) == [
        "load",
        "clean",
        "features",
        "train_logistic",
        "train_boosting",
        "evaluate",
    ]
    assert record["parameters"]["boosting_rounds"] == 30
    metrics = record["metrics"]
    assert set(metrics) == {"logistic_auc", "boosting_auc", "best_accuracy"}
    assert metrics["logistic_auc"] > 0.9 and metrics["boosting_auc"] > 0.9 and metrics["best_accuracy"] > 0.85


def test_shop_recommender_beats_the_popularity_baseline(tmp_path, data_dir, capsys):
    assert parallel_steps("shop_recommender.ipynb") == {frozenset({"train_item_cf", "train_popularity"})}
    record = run_example("shop_recommender.ipynb", tmp_path, capsys, "n_users=200")
    metrics = record["metrics"]
    # users buy mostly within their taste segment, which collaborative filtering can learn and popularity cannot
    assert metrics["cf_hit_rate"] > metrics["popularity_hit_rate"] > 0
    choose = Path(record["steps"]["choose"]["notebook"])
    outputs = "".join(o.get("text", "") for c in nbformat.read(choose, 4).cells for o in c.get("outputs", []))
    assert "-> item_cf" in outputs


def test_gpu_training_step_is_gpu_tagged_and_falls_back_to_cpu(tmp_path, data_dir, capsys):
    pipeline = build_pipeline(EXAMPLES / "gpu_training.ipynb")
    assert pipeline.step("train").limits == {"nvidia.com/gpu": "1"}
    record = run_example("gpu_training.ipynb", tmp_path, capsys, "epochs=20")
    assert record["metrics"]["test_accuracy"] > 0.8
    evaluate = Path(record["steps"]["evaluate"]["notebook"])
    printed = "".join(
        o.get("text", "") for c in nbformat.read(evaluate, 4).cells for o in c.get("outputs", [])
    )
    import torch

    assert f"trained on {'cuda' if torch.cuda.is_available() else 'cpu'}" in printed


def test_daily_report_is_a_plain_parameterised_notebook_run_whole(tmp_path, data_dir, capsys):
    import papermill

    notebook = nbformat.read(EXAMPLES / "daily_report.ipynb", 4)
    assert not any(
        t.startswith(("step:", "block:")) for c in notebook.cells for t in c.metadata.get("tags", [])
    )
    assert list(papermill.inspect_notebook(str(EXAMPLES / "daily_report.ipynb"))) == [
        "report_date",
        "orders_per_day",
        "currency",
    ]
    record = run_example("daily_report.ipynb", tmp_path, capsys, "report_date=2026-11-20")
    assert list(record["steps"]) == ["notebook"] and record["parameters"]["report_date"] == "2026-11-20"
    executed = nbformat.read(record["steps"]["notebook"]["notebook"], 4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "Report for Friday 20 November 2026: 300 orders" in printed and "busiest hour" in printed
