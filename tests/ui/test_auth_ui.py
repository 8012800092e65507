"""A user the server refuses sees an error where they are, not a broken panel: a wrong token (every
cellpipe request rejected by the real server) and a read-only user (reads allowed, runs refused)."""

from __future__ import annotations


def test_a_wrong_token_gets_an_error_not_a_broken_panel(page, lab, ui):
    ui.copy_notebook("wine_classifier.ipynb", "token.ipynb")

    ui.open_notebook("token.ipynb")
    # from now on the real server gets a wrong token on cellpipe's routes (and no login cookie)
    page.context.clear_cookies()
    page.route(
        "**/cellpipe/api/**",
        lambda route: route.continue_(
            headers={**route.request.headers, "authorization": "token not-the-token"}
        ),
    )
    ui.select_cell(4)
    ui.set_tags(4, ["step:load"])  # a change: the panel asks the server again
    assert ui.chip_labels()[:3] == ["imports", "parameters", "load"]  # the chips need no server
    ui.open_panel()
    banner = page.locator(".cp-Panel .cp-Banner-error")
    banner.wait_for()
    assert "cannot analyse" in banner.inner_text()
    assert "log in again" in banner.inner_text()  # a refused XSRF check: a stale session, not a permission
    assert page.locator(".cp-Panel .cp-RunButton").is_visible()  # the panel still works
    page.locator(".jp-NotebookPanel-toolbar .cp-ToolbarRun").click()
    ui.notification("Could not run token.ipynb")
    ui.shot("12-wrong-token")
    assert not page.console_errors


def test_a_read_only_user_sees_the_pipeline_but_cannot_run_it(page, read_only_lab, read_only_ui):
    ui = read_only_ui
    ui.open_notebook("wine_classifier.ipynb")
    # JupyterLab's own "Error Starting Kernel" (this user may not start kernels): dismiss it
    page.locator(".jp-Dialog", has_text="Error Starting Kernel").locator("button").click(timeout=30_000)
    page.locator(".jp-Dialog button", has_text="No Kernel").click(timeout=30_000)  # then: "Select Kernel"
    ui.open_panel()
    page.wait_for_selector('.cp-Dag[data-steps="load_data,split,train,evaluate"]')
    page.locator(".cp-Panel .cp-RunButton").click()
    toast = ui.notification("Could not run wine_classifier.ipynb")
    assert "not allowed" in toast.inner_text(), toast.inner_text()
    ui.shot("13-read-only-user")
    assert read_only_lab.api("GET", "runs").json()["runs"] == []  # the refused run left no record
