"""The notebook side of the extension in a real browser: chips, the role editor, the live DAG, the
parameters form and the tags the UI writes (checked with the CLI's own compiler)."""

from __future__ import annotations

import subprocess
import sys

import requests

WINE_CHIPS = ["imports", "parameters", "load_data", "split", "train", "evaluate", "metrics"]


def test_example_notebook_shows_roles_and_its_pipeline(page, lab, ui):
    ui.open_notebook("wine_classifier.ipynb")
    assert ui.chip_labels() == WINE_CHIPS
    step_chip = page.locator(".cp-Chip-step", has_text="train")
    assert step_chip.get_attribute("data-step") == "train"
    ui.open_panel()
    dag = page.locator(".cp-Panel .cp-Dag")
    dag.wait_for()
    assert dag.get_attribute("data-steps") == "load_data,split,train,evaluate"
    assert page.locator(".cp-Dag-node").count() == 4
    assert "4 steps" in page.locator(".cp-Panel-status").inner_text()
    edge_labels = page.eval_on_selector_all(".cp-Dag-edge text", "nodes => nodes.map(n => n.textContent)")
    assert any("model" in label for label in edge_labels), edge_labels
    ui.shot("01-example-notebook-chips-and-dag")
    ui.assert_drop_downs_look_like_jupyterlabs(page.locator(".cp-Panel .cp-Target"))
    assert not page.console_errors


def test_kale_notebook_shows_its_roles(page, lab, ui):
    ui.open_notebook("kale_legacy.ipynb")
    # block:/pipeline-parameters/pipeline-metrics and friends, read as the CLI reads them
    assert ui.chip_labels() == [
        "imports", "parameters", "area", "continues area", "perimeter", "ratio", "skip", "metrics",
    ]  # fmt: skip
    assert page.locator(".jp-CodeCell .cp-Chip-flagged").count() == 0
    ui.shot("02-kale-notebook-chips")


def test_clicking_a_step_in_the_dag_goes_to_its_cell(page, lab, ui):
    ui.open_notebook("wine_classifier.ipynb")
    ui.open_panel()
    page.locator('.cp-Dag-node[data-step="evaluate"]').click()
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget?.content?.activeCellIndex === 7")


def test_role_editor_starts_a_new_step_and_the_dag_follows(page, lab, ui):
    """Shift+S on an untagged cell opens the editor on "Start a step"; the tags compile with the CLI."""
    ui.copy_notebook("wine_classifier.ipynb", "edit_me.ipynb")
    ui.open_notebook("edit_me.ipynb")
    ui.open_panel()
    # a new untagged cell below "train" continues train...
    ui.select_cell(6)
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.type("importances = model.feature_importances_")
    page.keyboard.press("Escape")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-CodeCell .cp-Chip')].some(n => n.textContent === 'continues train')"
    )
    # ...until the user makes it a step of its own, with the keyboard
    page.keyboard.press("Shift+S")
    dialog = page.locator(".jp-Dialog .cp-RoleEditor")
    dialog.wait_for()
    step_input = page.locator('.cp-RoleEditor input[name="step"]')
    # the dialog moves focus to the name field once it is attached (a frame after it shows): wait for it
    page.wait_for_function(
        "() => document.activeElement?.matches('.cp-RoleEditor input[name=\"step\"]')", timeout=5_000
    )
    page.keyboard.type("Bad Name")
    page.wait_for_selector(".cp-RoleEditor-error")
    assert "not a valid step name" in page.locator(".cp-RoleEditor-error").first.inner_text()
    ui.shot("03-role-editor-validation")
    step_input.fill("importance")
    page.locator('.cp-RoleEditor input[name="gpu"]').fill("1")
    page.locator(".jp-Dialog-footer button", has_text="Apply").click()
    page.wait_for_selector('.cp-Dag[data-steps="load_data,split,train,importance,evaluate"]', timeout=15_000)
    assert "importance" in ui.chip_labels()
    ui.shot("04-new-step-in-dag")
    ui.command("docmanager:save")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
    saved = lab.notebook("edit_me.ipynb")
    tags = [c.get("metadata", {}).get("tags") for c in saved["cells"]]
    assert ["step:importance", "limit:nvidia.com/gpu:1"] in tags
    original = lab.notebook("wine_classifier.ipynb")

    # the user's other cells are untouched: same ids, sources and tags, in order
    def cells(notebook: dict, skip: str = "") -> list:
        return [
            (c.get("id"), "".join(c["source"]), c["metadata"].get("tags"))
            for c in notebook["cells"]
            if not skip or skip not in "".join(c["source"])
        ]

    assert cells(saved, skip="importances") == cells(original)
    compiled = subprocess.run(
        [sys.executable, "-m", "jupyter_ext.cli.main", "compile", "edit_me.ipynb", "-o", "edit_me.yaml"],
        capture_output=True,
        text=True,
        cwd=lab.root,
    )
    assert compiled.returncode == 0, compiled.stderr
    assert "importance" in (lab.root / "edit_me.yaml").read_text()


def test_a_tag_mistake_is_flagged_on_its_cell(page, lab, ui):
    """A tag typed by hand in the property inspector: the chip says what is wrong, the panel links to it."""
    ui.copy_notebook("wine_classifier.ipynb", "broken.ipynb")
    ui.open_notebook("broken.ipynb")
    ui.open_panel()
    below = page.locator(".jp-Notebook .jp-Cell").nth(7)
    top_before = below.bounding_box()["y"]
    ui.set_tags(5, ["step:Split Data"])
    flagged = page.locator(".jp-CodeCell .cp-Chip-flagged").first
    flagged.wait_for()
    assert "not a valid step name" in flagged.get_attribute("title")
    assert below.bounding_box()["y"] == top_before  # no layout jump: the chip band is always there
    banner = page.locator(".cp-Panel .cp-Banner-error")
    banner.wait_for()
    assert "cell 6" in banner.inner_text() and "not a valid step name" in banner.inner_text()
    assert "cp-mod-stale" in page.locator(".cp-Dag").get_attribute("class")  # the last good graph, greyed
    ui.shot("05-flagged-cell-and-error")
    banner.locator("button", has_text="Go to cell").click()
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget?.content?.activeCellIndex === 5")
    ui.set_tags(5, ["step:split_data"])
    page.wait_for_selector('.cp-Dag[data-steps="load_data,split_data,train,evaluate"]:not(.cp-mod-stale)')
    assert page.locator(".cp-Panel .cp-Banner-error").count() == 0
    assert page.locator(".jp-CodeCell .cp-Chip-flagged").count() == 0


def test_settings_turn_the_chips_off(page, lab, ui):
    """The Settings Editor's "Show cell role chips", set through JupyterLab's settings API."""
    ui.open_notebook("wine_classifier.ipynb")
    plugin = "cellpipe-labextension:plugin"
    headers = {"Authorization": f"token {lab.token}"}
    schema = requests.get(f"{lab.url}/lab/api/settings/{plugin}", headers=headers, timeout=30).json()[
        "schema"
    ]
    assert set(schema["properties"]) == {"defaultTarget", "autoSave", "showChips", "liveDag", "kfpUiBase"}
    answer = requests.put(
        f"{lab.url}/lab/api/settings/{plugin}",
        headers=headers,
        json={"raw": '{"showChips": false}'},
        timeout=30,
    )
    assert answer.status_code == 204, answer.text
    try:
        page.reload()
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        ui.open_panel()  # the extension is up (panel drawn) ...
        page.wait_for_selector(".cp-Dag")
        assert page.locator(".jp-Notebook .cp-Chip").count() == 0  # ... and shows no chips
    finally:
        requests.put(f"{lab.url}/lab/api/settings/{plugin}", headers=headers, json={"raw": "{}"}, timeout=30)
