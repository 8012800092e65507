"""The ways into the role editor that are not the chip: the cell context menu (mouse and keyboard only)
and the Shift+T shortcut; and the live graph turned off by its setting and back on."""

from __future__ import annotations

import time

import requests

PLUGIN = "cellpipe-labextension:plugin"
ROLE_DIALOG = ".jp-Dialog .cp-RoleEditor"
STEP_NAME = '.cp-RoleEditor input[name="step"]'
THREE_CELLS = [(["imports"], "import os"), (["step:load"], "x = 1"), ([], "y = x + 1")]


def focus_is_on(page, selector: str) -> None:
    """Wait until the element with the keyboard focus matches `selector`."""
    page.wait_for_function(
        "selector => document.activeElement?.matches(selector)", arg=selector, timeout=5_000
    )


def wait_for_chip(page, index: int, label: str) -> None:
    page.wait_for_function(
        "([index, label]) => document.querySelectorAll('.jp-Notebook .jp-Cell')[index]"
        "?.querySelector(':scope > .cp-Chip')?.textContent === label",
        arg=[index, label],
        timeout=10_000,
    )


def menu_items(page) -> list[str]:
    """The open context menu's visible entries, '-' for a separator."""
    return page.eval_on_selector_all(
        ".lm-Menu .lm-Menu-item:not(.lm-mod-hidden):not(.lm-mod-collapsed)",
        "nodes => nodes.map(n => n.dataset.type === 'separator' ? '-'"
        " : n.querySelector('.lm-Menu-itemLabel').textContent)",
    )


def test_context_menu_starts_a_step_and_sets_a_role(page, lab, ui):
    ui.write_notebook("menu.ipynb", [*THREE_CELLS, ([], "z = y")])
    ui.open_notebook("menu.ipynb")
    page.locator(".jp-Notebook .jp-Cell").nth(2).locator(".jp-InputArea-editor").click(button="right")
    page.locator(".lm-Menu").wait_for()
    items = menu_items(page)
    ours = items.index("Set Cell Role…")
    # cellpipe's entries are a group of their own: a separator before, "Start a New Step Here" next
    assert items[ours - 1] == "-" and items[ours + 1] == "Start a New Step Here", items
    ui.shot("16-cell-context-menu")
    page.locator(".lm-Menu .lm-Menu-item", has_text="Start a New Step Here").click()
    page.locator(ROLE_DIALOG).wait_for()
    assert "Cell 3" in page.locator(".jp-Dialog-header").inner_text()  # the cell right-clicked
    focus_is_on(page, STEP_NAME)
    page.keyboard.type("double")
    page.keyboard.press("Enter")
    wait_for_chip(page, 2, "double")
    assert ui.cell_tags(2) == ["step:double"]

    page.locator(".jp-Notebook .jp-Cell").nth(3).locator(".jp-InputPrompt").click(button="right")
    page.locator(".lm-Menu .lm-Menu-item", has_text="Set Cell Role…").click()
    page.locator(ROLE_DIALOG).wait_for()
    assert "Cell 4" in page.locator(".jp-Dialog-header").inner_text()
    page.locator(".cp-RoleEditor-kind", has_text="Skip").click()
    page.locator(".jp-Dialog-footer button", has_text="Apply").click()
    wait_for_chip(page, 3, "skip")
    assert ui.cell_tags(3) == ["skip"]
    assert ui.cell_tags(2) == ["step:double"]  # the other cell kept its role
    assert not page.console_errors


def test_context_menu_with_the_keyboard_only(page, lab, ui):
    """Arrow keys to the cell, the context-menu key, arrows to the entry, Enter; the dialog by keyboard;
    focus comes back to the notebook in command mode, so the next key acts on the cells."""
    ui.write_notebook("keys.ipynb", [*THREE_CELLS, ([], "z = y")])
    ui.open_notebook("keys.ipynb")
    focus_is_on(page, ".jp-Notebook .jp-Cell.jp-mod-active")  # JupyterLab focuses the opened notebook
    for _ in range(2):
        page.keyboard.press("ArrowDown")
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex === 2")
    page.keyboard.press("ContextMenu")
    page.locator(".lm-Menu").wait_for()
    entries = page.eval_on_selector_all(".lm-Menu .lm-Menu-item", "nodes => nodes.map(n => n.textContent)")
    assert "Set Cell Role…Shift+T" in entries and "Start a New Step HereShift+S" in entries  # shortcuts shown
    for _ in range(40):  # JupyterLab's own entries come first
        page.keyboard.press("ArrowDown")
        if page.locator(".lm-Menu .lm-Menu-item.lm-mod-active").inner_text().startswith("Set Cell Role"):
            break
    page.keyboard.press("Enter")
    page.locator(ROLE_DIALOG).wait_for()
    focus_is_on(page, '.cp-RoleEditor input[type="radio"]:checked')  # "Continue above", the cell's role now
    page.keyboard.press("ArrowLeft")  # the radio before it: "Start a step"
    assert page.locator('.cp-RoleEditor input[value="step"]').is_checked()
    focus_is_on(page, '.cp-RoleEditor input[value="step"]')
    page.keyboard.press("Tab")  # the radios are one tab stop: next is the step name
    focus_is_on(page, STEP_NAME)
    page.keyboard.type("double")
    ui.shot("17-role-editor-from-the-keyboard")
    page.keyboard.press("Enter")
    wait_for_chip(page, 2, "double")
    assert ui.cell_tags(2) == ["step:double"]
    focus_is_on(page, ".jp-Notebook .jp-Cell.jp-mod-active")
    page.keyboard.press("ArrowDown")  # the keyboard still drives the notebook
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex === 3")
    assert not page.console_errors


def test_shift_t_opens_the_role_editor_in_command_mode_only(page, lab, ui):
    ui.write_notebook("shift_t.ipynb", [*THREE_CELLS[:2], (["step:double"], "y = x * 2")])
    ui.open_notebook("shift_t.ipynb")
    ui.select_cell(2)
    page.keyboard.press("Shift+T")
    page.locator(ROLE_DIALOG).wait_for()
    assert "Cell 3" in page.locator(".jp-Dialog-header").inner_text()
    assert page.locator('.cp-RoleEditor input[value="step"]').is_checked()
    focus_is_on(page, STEP_NAME)
    assert page.locator(STEP_NAME).input_value() == "double"
    # Escape: nothing written, focus back on the cell
    page.keyboard.press("Escape")
    page.locator(ROLE_DIALOG).wait_for(state="detached")
    focus_is_on(page, ".jp-Notebook .jp-Cell.jp-mod-active")
    assert ui.cell_tags(2) == ["step:double"]
    # rename the step, keyboard only
    page.keyboard.press("Shift+T")
    focus_is_on(page, STEP_NAME)
    page.keyboard.press("Control+A")
    page.keyboard.type("twice")
    page.keyboard.press("Enter")
    wait_for_chip(page, 2, "twice")
    assert ui.cell_tags(2) == ["step:twice"]
    focus_is_on(page, ".jp-Notebook .jp-Cell.jp-mod-active")
    # in edit mode Shift+T is a capital T typed into the code
    page.keyboard.press("Enter")
    page.keyboard.press("End")
    page.keyboard.press("Shift+T")
    time.sleep(0.5)
    assert page.locator(ROLE_DIALOG).count() == 0
    source = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.activeCell.model.sharedModel.source"
    )
    assert source == "y = x * 2T"


def set_live_graph(page, ui, notebook: str, on: bool) -> None:
    """Tick or untick "Live pipeline graph" in JupyterLab's Settings Editor, then go back to the notebook."""
    ui.command("settingeditor:open", {"query": "cellpipe"})
    checkbox = page.locator(f'input[id$="{PLUGIN}_liveDag"]')
    checkbox.wait_for()
    assert checkbox.is_checked() != on
    with page.expect_response(
        lambda r: f"/lab/api/settings/{PLUGIN}" in r.url and r.request.method == "PUT"
    ) as saved:
        checkbox.click()
    assert saved.value.status == 204
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=notebook).click()


def test_live_graph_off_sends_nothing_and_says_so(page, lab, ui):
    analyses: list[str] = []
    page.on("request", lambda r: "/cellpipe/api/analyse" in r.url and analyses.append(r.url))
    ui.write_notebook("live.ipynb", [*THREE_CELLS[:2], (["step:double"], "y = x * 2")])
    ui.open_notebook("live.ipynb")
    ui.open_panel()
    page.wait_for_selector('.cp-Dag[data-steps="load,double"]')
    notice = page.locator(".cp-Panel .cp-Panel-liveOff")
    assert notice.count() == 0
    try:
        set_live_graph(page, ui, "live.ipynb", on=False)
        notice.wait_for()
        assert "Live graph is off" in notice.inner_text()
        sent = len(analyses)
        # a tag change: the chip follows (drawn here), the graph does not (nothing sent) and says so
        ui.set_tags(2, ["step:triple"])
        wait_for_chip(page, 2, "triple")
        page.wait_for_selector(".cp-Dag.cp-mod-stale")
        assert "changed since this graph was drawn" in notice.inner_text()
        time.sleep(2)  # past the 600 ms typing debounce: an analysis would have gone out by now
        assert len(analyses) == sent
        assert page.locator(".cp-Dag").get_attribute("data-steps") == "load,double"
        ui.shot("18-live-graph-off")
        # "Analyse now" draws it once
        notice.locator("button", has_text="Analyse now").click()
        page.wait_for_selector('.cp-Dag[data-steps="load,triple"]:not(.cp-mod-stale)')
        assert len(analyses) == sent + 1
        assert "not redrawn as you edit" in notice.inner_text()

        # opened with the setting off: nothing is sent at all, the panel says why there is no graph
        analyses.clear()
        ui.open_notebook("live.ipynb")
        ui.open_panel()
        notice.wait_for()
        time.sleep(2)
        assert analyses == []
        assert page.locator(".cp-Panel .cp-Dag").count() == 0
        assert "not analysed as you edit" in notice.inner_text()

        # back on: analysed at once, and again on the next change
        set_live_graph(page, ui, "live.ipynb", on=True)
        page.wait_for_selector('.cp-Dag[data-steps="load,double"]')  # as saved: the reload dropped "triple"
        assert notice.count() == 0 and len(analyses) >= 1
        ui.set_tags(2, ["step:quadruple"])
        page.wait_for_selector('.cp-Dag[data-steps="load,quadruple"]')
    finally:
        headers = {"Authorization": f"token {lab.token}"}
        requests.put(f"{lab.url}/lab/api/settings/{PLUGIN}", headers=headers, json={"raw": "{}"}, timeout=30)
