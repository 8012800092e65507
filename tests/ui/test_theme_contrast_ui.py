"""Readable in both themes: every status badge of the runs view, every cell role chip and every label of
the live graph has text that stands out from its background (WCAG AA, 4.5:1 for text this small), in
JupyterLab Light and Dark. The colours are measured in the browser as drawn (computed styles, SVG fills,
semi-transparent layers composed)."""

from __future__ import annotations

import time

import pytest

from jupyter_ext.records.models import RunRecord, RunStatus, StepRecord, StepStatus, new_run_id
from jupyter_ext.records.store import RecordStore

MINIMUM = 4.5  # WCAG 2 AA for normal text; badges and chips are 11 px

# The contrast of each element's text with what is drawn behind it, as the browser computes the colours.
CONTRASTS_JS = """
selector => {
  const parse = text => {
    const m = text.match(/rgba?\\(([^)]+)\\)/);
    if (!m) throw new Error(`unexpected colour ${text}`);
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, bottom) => [0, 1, 2].map(i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const backdrop = node => {
    // SVG text of a graph node: its box is behind it
    const box = node.closest('.cp-Dag-node')?.querySelector('rect');
    if (box) return parse(getComputedStyle(box).fill);
    const layers = [];
    for (let n = node; n; n = n.parentElement) {
      const colour = parse(getComputedStyle(n).backgroundColor);
      if (colour[3] > 0) {
        layers.push(colour);
        if (colour[3] >= 1) break;
      }
    }
    return layers.reverse().reduce((below, layer) => over(layer, below), [255, 255, 255, 1]);
  };
  const luminance = c => {
    const f = v => ((v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4));
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const text = n => (n instanceof HTMLInputElement ? n.value : n.textContent).trim();
  return [...document.querySelectorAll(selector)]
    .filter(n => text(n) && n.getClientRects().length)
    .map(n => {
      const back = backdrop(n);
      const ink = n instanceof SVGElement ? getComputedStyle(n).fill : getComputedStyle(n).color;
      const [hi, lo] = [luminance(over(parse(ink), back)), luminance(back)].sort(
        (a, b) => b - a
      );
      const kind = n.getAttribute('class') || n.parentElement.getAttribute('class');
      return { text: text(n), kind, ratio: (hi + 0.05) / (lo + 0.05) };
    });
}
"""

ROLES = [
    (["imports"], "import os"),
    (["parameters"], "n = 3"),
    (["step:load"], "xs = list(range(n))"),
    ([], "ys = [x * 2 for x in xs]"),
    (["step:train"], "total = sum(ys)"),
    (["pipeline-metrics"], "print(total)"),
    (["skip"], "print('scratch')"),
    (["step:Bad Name"], "z = 1"),
]

STEPS_BY_RUN = [  # a run of each final status, its steps in each status a step can end with
    (RunStatus.SUCCEEDED, [StepStatus.SUCCEEDED, StepStatus.SUCCEEDED]),
    (RunStatus.FAILED, [StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.NOT_RUN]),
    (RunStatus.CANCELLED, [StepStatus.CANCELLED, StepStatus.NOT_RUN]),
    (RunStatus.CRASHED, [StepStatus.CRASHED]),
]


def seed_runs(lab, notebook: str) -> list[str]:
    """Records of finished runs, one per status, written to the lab's run store (as another process would)."""
    store = RecordStore(lab.root / ".cellpipe")
    ids = []
    for age, (status, steps) in enumerate(STEPS_BY_RUN):
        created = time.time() - 60 * (age + 1)
        record = RunRecord(
            id=new_run_id(), notebook=str(lab.root / notebook), status=status, created=created,
            finished=created + 5, duration_s=5.0,
            steps=[StepRecord(name=f"s{i}", status=s, cached=(status is RunStatus.SUCCEEDED and i == 1),
                              duration_s=1.0) for i, s in enumerate(steps)],
        )  # fmt: skip
        store.save_run(record)
        ids.append(record.id)
    store.close()
    return ids


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_badges_and_chips_are_readable_in_the_theme(page, lab, ui, theme):
    name = f"contrast_{theme.split()[-1].lower()}.ipynb"
    ui.write_notebook(name, ROLES)
    run_ids = seed_runs(lab, name)
    ui.open_notebook(name)
    ui.command("apputils:change-theme", {"theme": theme})
    light = "true" if theme.endswith("Light") else "false"
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'", timeout=30_000)
    ui.command("cellpipe:open-runs", {"run": run_ids[0]})
    for run_id in run_ids:  # expand every run: its steps' badges too
        run = page.locator(f'.cp-Run[data-run="{run_id}"]')
        run.wait_for(timeout=30_000)
        if run.locator(".cp-Run-summary").get_attribute("aria-expanded") != "true":
            run.locator(".cp-Run-summary").click()
        run.locator(".cp-Steps").wait_for()
    page.wait_for_timeout(500)  # the theme's transition, if any, has ended
    measured = page.evaluate(CONTRASTS_JS, ".cp-Badge, .cp-Chip")
    ui.shot(f"23-contrast-{theme.split()[-1].lower()}")
    # the live graph of a notebook that has one (the one above has a flagged cell: no graph)
    ui.open_notebook("wine_classifier.ipynb")
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'", timeout=30_000)
    ui.open_panel()
    page.wait_for_selector(".cp-Panel .cp-Dag-node", timeout=30_000)
    measured += page.evaluate(CONTRASTS_JS, ".cp-Dag text, .cp-Parameters input")
    ui.shot(f"24-graph-{theme.split()[-1].lower()}")
    kinds = {m["kind"] for m in measured}
    assert any("cp-status-cancelled" in k for k in kinds) and any("cp-Chip-parameters" in k for k in kinds)
    assert any("cp-Chip-flagged" in k for k in kinds) and any("cp-status-cached" in k for k in kinds)
    assert {"cp-Dag-name", "cp-Dag-detail", "form-control"} <= kinds and any(
        "cp-Dag-edge" in k for k in kinds
    )
    unreadable = [f"{m['kind']} {m['text']!r}: {m['ratio']:.2f}" for m in measured if m["ratio"] < MINIMUM]
    assert not unreadable, f"text below {MINIMUM}:1 in {theme}: " + "; ".join(unreadable)
