"""Run as pipeline from the browser: the toolbar button, the parameters form, the runs view with live
status, errors before a run starts, and cancelling a long run. Real kernels run every step."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support.waiting import wait_until

RUN_TIMEOUT_MS = 240_000
REPO = Path(__file__).parents[2]


def wait_for_run_status(page, run_id: str, status: str, timeout: int = RUN_TIMEOUT_MS) -> None:
    page.wait_for_selector(f'.cp-Run[data-run="{run_id}"].cp-status-{status}', timeout=timeout)


def start_from_toolbar(page) -> str:
    """Click "Run as pipeline" on the notebook toolbar; returns the run id the server answered."""
    with page.expect_response(
        lambda r: "/cellpipe/api/runs" in r.url and r.request.method == "POST"
    ) as answer:
        page.locator(".jp-NotebookPanel-toolbar .cp-ToolbarRun").click()
    response = answer.value
    assert response.status == 202, response.text()
    return response.json()["id"]


def test_run_as_pipeline_with_a_parameter_finishes_green(page, lab, ui):
    ui.copy_notebook("wine_classifier.ipynb", "run_me.ipynb")
    ui.open_notebook("run_me.ipynb")
    ui.open_panel()
    field = page.locator(".cp-Parameters input#root_n_estimators")
    field.wait_for()
    assert field.input_value() == "10"
    field.fill("7")
    page.locator(".cp-Parameters input#root_max_depth").click()  # leave the field, as a user would
    ui.shot("06-parameters-form")
    run_id = start_from_toolbar(page)
    notification = ui.notification(f"Pipeline run {run_id[:8]}")
    ui.shot("07-run-started-notification")
    notification.locator("button", has_text="Show run").click()
    page.wait_for_selector(f'.cp-Run[data-run="{run_id}"]')
    wait_for_run_status(page, run_id, "succeeded")
    run = page.locator(f'.cp-Run[data-run="{run_id}"]')
    statuses = run.locator(".cp-Step .cp-Badge").evaluate_all("nodes => nodes.map(n => n.dataset.status)")
    assert statuses and set(statuses) <= {"succeeded", "cached"}, statuses
    assert run.locator(".cp-Step").count() == 4
    ui.shot("08-run-succeeded")
    record = lab.api("GET", f"runs/{run_id}").json()
    assert record["parameters"]["n_estimators"] == 7
    assert record["status"] == "succeeded"
    assert [s["name"] for s in record["steps"]] == ["load_data", "split", "train", "evaluate"]

    # the executed notebook of a step opens as a (read-only) notebook tab, outputs included
    run.locator('.cp-Step[data-step="split"] button', has_text="Open notebook").click()
    tab = page.locator(
        ".jp-NotebookPanel", has=page.locator(".jp-OutputArea-output", has_text="training rows")
    )
    tab.wait_for(timeout=30_000)
    assert "split.ipynb" in page.locator(".lm-DockPanel-tabBar .jp-mod-active").inner_text()
    # a view of what ran: no kernel started for it, nothing to save
    time.sleep(2)  # a kernel would be asked for within a second of the notebook showing
    sessions = requests.get(
        f"{lab.url}/api/sessions", headers={"Authorization": f"token {lab.token}"}, timeout=30
    )
    assert not [s for s in sessions.json() if "split.ipynb" in s["path"]], sessions.json()
    assert not page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.dirty")
    ui.shot("08b-executed-step-notebook")

    # re-run from the same snapshot and parameters: a new run, green again
    ui.command("cellpipe:open-runs", {"run": run_id})
    run.locator("button", has_text="Re-run").click()
    # (the view may list other notebooks' runs here: the step notebook's tab has the focus)
    rerun = wait_until(
        lambda: next(
            (r for r in lab.api("GET", "runs?path=run_me.ipynb").json()["runs"] if r["id"] != run_id), None
        ),
        timeout=30,
        what="the re-run's record",
    )
    page.wait_for_selector(f'.cp-Run[data-run="{rerun["id"]}"]', timeout=30_000)
    assert rerun["id"] != run_id and rerun["rerun_of"] == run_id
    assert rerun["parameters"]["n_estimators"] == 7 and rerun["snapshot_id"] == record["snapshot_id"]
    wait_for_run_status(page, rerun["id"], "succeeded")


def test_an_error_before_the_start_is_shown_to_the_user(page, lab, ui):
    ui.write_notebook(
        "typo.ipynb", [(["imports"], "import os"), (["step:load"], "rows = [1, 2,\nprint(rows)")]
    )
    ui.open_notebook("typo.ipynb")
    page.locator(".jp-NotebookPanel-toolbar .cp-ToolbarRun").click()
    toast = ui.notification("Could not run typo.ipynb")
    assert "syntax error" in toast.inner_text()
    toast.locator("button", has_text="Details").click()  # the whole message, past JupyterLab's 140 characters
    details = page.locator(".jp-Dialog-content", has_text="Could not run typo.ipynb")
    details.wait_for()
    assert "cell 2" in details.inner_text() and "tag the cell 'skip'" in details.inner_text()
    ui.shot("09-pre-start-error")
    assert lab.api("GET", "runs?path=typo.ipynb").json()["runs"] == []  # a refused run leaves no record


def test_cancel_a_long_run(page, lab, ui):
    ui.write_notebook(
        "slow.ipynb",
        [
            (["imports"], "import time"),
            (["step:wait"], "time.sleep(300)\ndone = True"),
            (["step:after"], "print(done)"),
        ],
    )
    ui.open_notebook("slow.ipynb")
    run_id = start_from_toolbar(page)
    ui.notification(run_id[:8]).locator("button", has_text="Show run").click()
    wait_for_run_status(page, run_id, "running", timeout=120_000)
    page.wait_for_selector(
        f'.cp-Run[data-run="{run_id}"] .cp-Step[data-step="wait"].cp-status-running', timeout=120_000
    )
    # a long step shows how long it has been running, and the figure moves
    duration = page.locator(f'.cp-Run[data-run="{run_id}"] .cp-Step[data-step="wait"] .cp-Step-duration')
    page.wait_for_function(
        "node => /^[0-9.]+ s$/.test(node.textContent) && parseFloat(node.textContent) >= 2",
        arg=duration.element_handle(),
        timeout=30_000,
    )
    assert page.locator(f'.cp-Run[data-run="{run_id}"] .cp-Run-duration').inner_text().endswith(" s")
    ui.shot("10-long-run-running")
    # from the keyboard: the Cancel button turns disabled, then goes; the focus stays at the run
    page.locator(f'.cp-Run[data-run="{run_id}"] button', has_text="Cancel").focus()
    with page.expect_response(lambda r: f"/runs/{run_id}/cancel" in r.url, timeout=120_000):
        page.keyboard.press("Enter")
    wait_for_run_status(page, run_id, "cancelled", timeout=120_000)
    page.wait_for_function(
        f"() => document.activeElement?.closest('.cp-Run')?.dataset.run === '{run_id}'"
        " && document.activeElement.textContent === 'Logs'",
        timeout=10_000,
    )
    record = lab.api("GET", f"runs/{run_id}").json()
    assert record["status"] == "cancelled", json.dumps(record)[:500]
    assert duration.inner_text().endswith(" s")  # how long the cancelled step ran
    ui.toast("cancel")  # the answer's notification, in the shot whole (shot waits for its slide-in)
    ui.shot("11-long-run-cancelled")


def test_a_terminal_run_cancelled_from_the_browser_shows_cancelling_until_it_stops(page, lab, ui):
    """A `cellpipe run` in a terminal, cancelled from JupyterLab: while its process has not acted on the
    request (held with SIGSTOP here, so the state lasts) the run shows a "cancelling" badge; then it is cancelled."""
    ui.write_notebook(
        "terminal.ipynb",
        [(["step:wait"], "import time\ntime.sleep(300)\ndone = True"), (["step:after"], "print(done)")],
    )
    env = {**os.environ, "CELLPIPE_HOME": str(lab.root / ".cellpipe"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}  # fmt: skip
    env.pop("MLFLOW_TRACKING_URI", None)
    run = subprocess.Popen([sys.executable, "-m", "jupyter_ext.cli", "run", "terminal.ipynb", "--no-track"],
                           cwd=lab.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.time() + 120
        while True:
            runs = lab.api("GET", "runs?path=terminal.ipynb").json()["runs"]
            if runs and runs[0]["steps"][0]["status"] == "running":
                break
            assert time.time() < deadline and run.poll() is None, "the terminal run did not start"
            time.sleep(0.3)
        run_id = runs[0]["id"]
        run.send_signal(signal.SIGSTOP)  # alive, but not looking for cancel requests
        ui.open_notebook("terminal.ipynb")
        ui.command("cellpipe:open-runs", {"run": run_id})
        entry = page.locator(f'.cp-Run[data-run="{run_id}"]')
        entry.locator("button", has_text="Cancel").click()
        entry.locator(".cp-Run-cancelling").wait_for(timeout=60_000)
        button = entry.locator(".cp-Run-actions button", has_text="Cancelling")
        assert button.is_disabled()
        ui.shot("11b-terminal-run-cancelling")
    finally:
        run.send_signal(signal.SIGCONT)
    wait_for_run_status(page, run_id, "cancelled", timeout=60_000)
    assert entry.locator(".cp-Run-cancelling").count() == 0
    output = run.communicate(timeout=60)[0]
    assert run.returncode == 130 and "cancelled by" in output, output


def test_the_logs_dialog_shows_the_run_log_and_gives_the_focus_back(page, lab, ui):
    """What the kernels wrote outside the notebook (here straight to file descriptor 2), in a dialog
    opened from the run with the keyboard; Escape closes it and the focus is back on the Logs button."""
    ui.write_notebook(
        "logs.ipynb",
        [(["step:say"], "import os\nos.write(2, b'written to fd 2 by the kernel\\n')\nsaid = True")],
    )
    ui.open_notebook("logs.ipynb")
    run_id = start_from_toolbar(page)
    ui.command("cellpipe:open-runs", {"run": run_id})
    wait_for_run_status(page, run_id, "succeeded")
    logs = page.locator(f'.cp-Run[data-run="{run_id}"] .cp-Run-actions button', has_text="Logs")
    logs.focus()
    page.keyboard.press("Enter")
    dialog = page.locator(".jp-Dialog", has=page.locator(".cp-Logs"))
    dialog.wait_for()
    assert f"Logs of run {run_id[:8]}" in dialog.locator(".jp-Dialog-header").inner_text()
    text = dialog.locator(".cp-Logs").inner_text()
    assert "written to fd 2 by the kernel" in text, text
    ui.shot("11c-run-logs-dialog")
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    page.wait_for_function(
        "() => document.activeElement?.matches('.cp-Run-actions button') &&"
        " document.activeElement.textContent === 'Logs'",
        timeout=5_000,
    )


def shown_seconds(text: str) -> float:
    """A duration as the runs view writes it ("4.2 s", "17 s", "1 min 5 s") in seconds."""
    found = re.fullmatch(r"(?:(\d+) min )?([\d.]+) s", text.strip())
    assert found, f"not a duration: {text!r}"
    return int(found[1] or 0) * 60 + float(found[2])


# every 100 ms: the run's status, its shown duration and where its step dots are (window.cpDotSamples)
SAMPLE_DOTS_JS = """
runId => {
  window.cpDotSamples = [];
  setInterval(() => {
    const run = document.querySelector(`.cp-Run[data-run="${runId}"]`);
    const dots = run?.querySelector('.cp-Run-summary .cp-StepDots');
    const shown = run?.querySelector('.cp-Run-duration')?.textContent;
    if (dots && shown) {
      const status = run.querySelector('.cp-Run-summary .cp-Badge').dataset.status;
      window.cpDotSamples.push([status, shown, Math.round(dots.getBoundingClientRect().left)]);
    }
  }, 100);
}
"""


def test_a_run_that_waited_in_the_queue_shows_its_time_from_its_creation(page, lab, ui):
    """The server runs two runs at a time (its default): a third waits, queued. Once it runs, the time the
    view shows counts from its creation (its wait included, as its final duration does), its step's from
    the step's start; at the end the final duration takes over without a jump back. The figure moves, what
    follows it in the line does not."""
    ui.write_notebook("busy.ipynb", [(["step:hold"], "import time\ntime.sleep(15)")])
    ui.write_notebook("waits.ipynb", [(["step:hold"], "import time\ntime.sleep(8)")])
    for _ in range(2):
        answer = lab.api("POST", "runs", json={"path": "busy.ipynb"})
        assert answer.status_code == 202, answer.text
    ui.open_notebook("waits.ipynb")
    run_id = start_from_toolbar(page)
    ui.command("cellpipe:open-runs", {"run": run_id})
    page.evaluate(SAMPLE_DOTS_JS, run_id)
    wait_for_run_status(page, run_id, "queued", timeout=30_000)
    ui.shot("11d-run-queued")
    run = page.locator(f'.cp-Run[data-run="{run_id}"]')
    run.locator('.cp-Step[data-step="hold"].cp-status-running').wait_for(timeout=RUN_TIMEOUT_MS)
    page.wait_for_timeout(2_000)  # a poll or two into the step
    shown = shown_seconds(run.locator(".cp-Run-duration").inner_text())
    step_shown = shown_seconds(run.locator('.cp-Step[data-step="hold"] .cp-Step-duration').inner_text())
    record = lab.api("GET", f"runs/{run_id}").json()
    waited = record["started"] - record["created"]
    ui.shot("11e-run-running-after-the-queue")
    assert waited > 3, record  # it did wait for a slot
    assert shown >= waited + step_shown - 2, (shown, waited, step_shown)  # 2 s: the 1.5 s poll and rounding
    assert step_shown < shown
    wait_for_run_status(page, run_id, "succeeded")
    # the step dots after the moving figure stood still while it moved (through "9.9 s" to "10 s" too)
    samples = page.evaluate("() => window.cpDotSamples")
    moving = [
        (text, x) for status, text, x in samples if status in ("queued", "running") and "min" not in text
    ]
    assert any(shown_seconds(t) < 10 for t, _ in moving) and any(shown_seconds(t) >= 10 for t, _ in moving)
    assert len({x for _, x in moving}) == 1, sorted(set(moving))
    final = lab.api("GET", f"runs/{run_id}").json()["duration_s"]
    assert final >= shown and shown_seconds(run.locator(".cp-Run-duration").inner_text()) == pytest.approx(
        final, abs=1
    )


def narrow_runs_view(page, width: int) -> float:
    """Drag the split between the notebook and the runs view (as a user does) until the view is `width` px."""
    handle = page.locator('.lm-DockPanel-handle[data-orientation="horizontal"]').first.bounding_box()
    view = page.locator("#cellpipe-runs-view").bounding_box()
    y = handle["y"] + handle["height"] / 2
    page.mouse.move(handle["x"] + handle["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(view["x"] + view["width"] - width, y, steps=5)
    page.mouse.up()
    shown = page.locator("#cellpipe-runs-view").bounding_box()["width"]
    assert abs(shown - width) < 4, shown
    return shown


# where each part of a run's summary is drawn, its step rows' heights, and whether the view scrolls sideways
SUMMARY_PARTS = ["caret", "badge", "notebook", "duration", "dots", "target", "created", "id"]
RUN_LAYOUT_JS = """
runId => {
  const view = document.querySelector('#cellpipe-runs-view .cp-Runs');
  const run = view.querySelector(`.cp-Run[data-run="${runId}"]`);
  const box = node => {
    const r = node.getBoundingClientRect();
    return [r.left, r.top, r.right, r.bottom].map(v => Math.round(v * 10) / 10);
  };
  const summary = run.querySelector('.cp-Run-summary');
  const parts = [...summary.querySelectorAll(':scope > :not(.cp-Run-meta), .cp-Run-meta > *')];
  return {
    sideways: [view.scrollWidth - view.clientWidth, run.scrollWidth - run.clientWidth],
    summary: box(summary),
    parts: parts.map(box),
    rows: [...run.querySelectorAll('.cp-Steps tr')].map(row => row.getBoundingClientRect().height),
  };
}
"""


def assert_laid_out_cleanly(layout: dict) -> None:
    """Nothing scrolls sideways; the summary's parts neither overlap nor stick out of it."""
    assert layout["sideways"] == [0, 0], layout
    left, top, right, bottom = layout["summary"]
    parts = dict(zip(SUMMARY_PARTS, layout["parts"], strict=True))
    for name, (x0, y0, x1, y1) in parts.items():
        assert x1 > x0 and y1 > y0, (name, parts)
        assert left - 0.5 <= x0 and x1 <= right + 0.5 and top - 0.5 <= y0 and y1 <= bottom + 0.5, (
            name,
            parts,
        )
    for a, (ax0, ay0, ax1, ay1) in parts.items():
        for b, (bx0, by0, bx1, by1) in parts.items():
            if a < b:
                overlap = max(0, min(ax1, bx1) - max(ax0, bx0)) * max(0, min(ay1, by1) - max(ay0, by0))
                assert overlap < 1, (a, b, parts)


def test_the_run_summary_fits_a_narrow_view_and_stays_put_when_the_run_ends(page, lab, ui):
    """The runs view split 300 px wide beside the notebook (then 280): status, duration, step dots, target,
    time and id each keep a place of their own, nothing scrolls sideways, and a running run is laid out as the
    finished one (no line wraps anew, no step row grows when its "Open notebook" button comes)."""
    ui.write_notebook(
        "a_rather_long_notebook_name_for_a_side_panel.ipynb",
        [(["step:first"], "import time\ntime.sleep(4)\nx = 1"), (["step:second"], "y = x + 1")],
    )
    ui.open_notebook("a_rather_long_notebook_name_for_a_side_panel.ipynb")
    run_id = start_from_toolbar(page)
    ui.command("cellpipe:open-runs", {"run": run_id})
    narrow_runs_view(page, 300)
    run = page.locator(f'.cp-Run[data-run="{run_id}"]')
    run.locator('.cp-Step[data-step="first"].cp-status-running').wait_for(timeout=RUN_TIMEOUT_MS)
    running = page.evaluate(RUN_LAYOUT_JS, run_id)
    ui.shot("25a-narrow-run-running")
    wait_for_run_status(page, run_id, "succeeded")
    run.locator(".cp-Step-open button").nth(1).wait_for()
    page.wait_for_timeout(300)  # past the last poll's render
    finished = page.evaluate(RUN_LAYOUT_JS, run_id)
    ui.shot("25b-narrow-run-succeeded")
    for layout in (running, finished):
        assert_laid_out_cleanly(layout)
    assert finished["summary"] == running["summary"], (running, finished)
    assert finished["parts"] == running["parts"], (running, finished)
    assert finished["rows"] == running["rows"], (running, finished)
    assert run.locator(".cp-Run-notebook").get_attribute("title") == (
        "a_rather_long_notebook_name_for_a_side_panel.ipynb"
    )  # cut short (…) in the view, whole on hover
    assert run.locator(".cp-Run-summary .cp-Caret svg").count() == 1  # JupyterLab's caret icon, not a "▾"
    # the button is its icon here; its name is still "Open notebook"
    assert page.get_by_role("button", name="Open notebook").count() == 2

    narrow_runs_view(page, 280)
    assert_laid_out_cleanly(page.evaluate(RUN_LAYOUT_JS, run_id))
    ui.shot("25c-narrow-run-280px")

    # from 720 px a run is one line, still clean
    narrow_runs_view(page, 730)
    wide = page.evaluate(RUN_LAYOUT_JS, run_id)
    assert_laid_out_cleanly(wide)
    assert max(top for _, top, _, _ in wide["parts"]) - min(top for _, top, _, _ in wide["parts"]) < 8, wide
    ui.shot("25d-run-one-line-730px")
