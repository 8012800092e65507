"""Keyboard focus in cellpipe's parts of JupyterLab is drawn as JupyterLab draws its own: a solid outline in
the theme's focus colour and width (`--jp-focus-outline-color`, `--jp-focus-outline-width`), on the cell role
chips, the live graph's steps, the run summaries and the links in a run."""

from __future__ import annotations

from tests.ui.test_run_links_ui import ONE_STEP, save_finished_run, shown_run

# the element's outline when it has the keyboard's focus, and the theme's focus outline, as computed colours
FOCUS_RING_JS = """
node => {
  node.focus();
  const probe = document.createElement('span');
  probe.style.color = 'var(--jp-focus-outline-color)';
  probe.style.width = 'var(--jp-focus-outline-width)';
  probe.style.position = 'absolute';
  document.body.appendChild(probe);
  const theme = getComputedStyle(probe);
  const wanted = [theme.color, theme.width];
  probe.remove();
  const style = getComputedStyle(node);
  return {
    keyboard: node.matches(':focus-visible'),
    ring: [style.outlineStyle, style.outlineColor, style.outlineWidth],
    wanted: ['solid', ...wanted],
  };
}
"""


def focus_ring(page, locator) -> dict:
    page.keyboard.press("Shift")  # the last input is the keyboard's: focus() then shows as keyboard focus
    return locator.evaluate(FOCUS_RING_JS)


def test_keyboard_focus_looks_like_jupyterlabs(page, lab, ui):
    ui.write_notebook("focus.ipynb", ONE_STEP)
    record = save_finished_run(
        lab, "focus.ipynb", {"mlflow": "http://mlflow.example:5000/#/experiments/0/runs/x"}
    )
    ui.open_notebook("focus.ipynb")
    ui.open_panel()
    page.wait_for_selector(".cp-Dag-node")
    run = shown_run(ui, record.id)
    rings = {
        "chip": focus_ring(page, page.locator(".jp-Notebook .cp-Chip").first),
        "graph step": focus_ring(page, page.locator(".cp-Dag-node").first),
        "run summary": focus_ring(page, run.locator(".cp-Run-summary")),
        "link": focus_ring(page, run.locator("a.cp-Link", has_text="MLflow run")),
    }
    ui.shot("26-run-link-keyboard-focus")
    for name, ring in rings.items():
        assert ring["keyboard"], (name, ring)  # what is checked is the keyboard's focus, not a click's
        assert ring["ring"] == ring["wanted"], (name, ring)
