"""Schedules from the browser: the dialog (presets, the server's description and next fire times, a bad
cron named), the schedules list, pause/resume and delete, all against the real schedule routes."""

from __future__ import annotations


def test_create_pause_and_delete_a_schedule(page, lab, ui):
    ui.copy_notebook("wine_classifier.ipynb", "nightly.ipynb")
    ui.open_notebook("nightly.ipynb")
    ui.open_panel()
    page.locator(".cp-Panel button", has_text="Schedule…").click()
    form = page.locator(".jp-Dialog .cp-ScheduleForm")
    form.wait_for()
    preview = form.locator(".cp-SchedulePreview")
    cron = form.locator('input[name="cron"]')
    # a mistake is named before anything is saved
    cron.fill("61 * * * *")
    form.locator(".cp-RoleEditor-error").wait_for()
    assert "cron" in preview.inner_text().lower()
    # a preset, described in words by the server, with the next fire times
    form.locator(".cp-Preset", has_text="Weekdays at 07:00").click()
    assert cron.input_value() == "0 7 * * 1-5"
    page.wait_for_function(
        "() => /Next:/.test(document.querySelector('.cp-SchedulePreview')?.textContent ?? '')", timeout=15_000
    )
    assert "07:00" in preview.inner_text() or "7:00" in preview.inner_text()
    name = form.locator('input[name="name"]')
    assert name.input_value() == "nightly"  # made from the notebook's name
    name.fill("Nightly wine")
    assert "e.g. 'nightly-wine'" in form.locator(".cp-RoleEditor-error").inner_text()
    name.fill("nightly-wine")
    # the fields of a row line up, also below a label that wraps ("Missed while the server was down")
    boxes = [form.locator(f'select[name="{n}"]').bounding_box() for n in ("timezone", "target", "catch_up")]
    assert len({round(b["y"]) for b in boxes}) == 1 and len({round(b["height"]) for b in boxes}) == 1, boxes
    ui.assert_drop_downs_look_like_jupyterlabs(form)
    ui.shot("14-schedule-dialog")
    with page.expect_response(
        lambda r: r.url.endswith("/cellpipe/api/schedules") and r.request.method == "POST"
    ) as made:
        page.locator(".jp-Dialog-footer button", has_text="Save schedule").click()
    assert made.value.status == 201, made.value.text()
    schedule = made.value.json()
    row = page.locator(f'.cp-Schedules tr[data-schedule="{schedule["id"]}"]')
    row.wait_for()
    assert "nightly-wine" in row.inner_text() and "nightly.ipynb" in row.inner_text()
    when = row.locator("td").nth(2).inner_text()
    assert when.count("UTC") == 1, when  # the description names the time zone; nothing repeats it
    ui.shot("15-schedules-list")
    # in a narrow window the table scrolls sideways in a box of its own: the view and its header stay put
    page.click('.jp-SideBar.jp-mod-right li[data-id="cellpipe-pipeline"]')  # the pipeline panel closes
    page.set_viewport_size({"width": 600, "height": 900})
    page.wait_for_function(
        "() => document.querySelector('.cp-Schedules').getBoundingClientRect().width < 480"
    )
    view_overflow, table_overflow = page.evaluate(
        "() => [document.querySelector('.cp-Schedules'), document.querySelector('.cp-Schedules table').parentNode]"
        ".map(node => node.scrollWidth - node.clientWidth)"
    )
    assert view_overflow == 0 and table_overflow > 0, (view_overflow, table_overflow)
    ui.shot("15b-schedules-list-narrow")
    page.set_viewport_size({"width": 1440, "height": 900})

    row.locator("button", has_text="Pause").click()
    row.locator(".cp-Badge", has_text="paused").wait_for()
    assert lab.api("GET", f"schedules/{schedule['id']}").json()["enabled"] is False
    row.locator("button", has_text="Resume").click()
    row.locator("button", has_text="Pause").wait_for()
    assert lab.api("GET", f"schedules/{schedule['id']}").json()["enabled"] is True

    row.locator("button", has_text="Edit").click()
    edit = page.locator(".jp-Dialog .cp-ScheduleForm")
    edit.locator(".cp-Preset", has_text="Every hour").click()
    with page.expect_response(lambda r: schedule["id"] in r.url and r.request.method == "PATCH") as patched:
        page.locator(".jp-Dialog-footer button", has_text="Save schedule").click()
    assert patched.value.status == 200, patched.value.text()
    edited = lab.api("GET", f"schedules/{schedule['id']}").json()
    assert edited["cron"] == "0 * * * *" and edited["name"] == "nightly-wine"

    row.locator("button", has_text="Delete").focus()
    page.keyboard.press("Enter")  # from the keyboard: the row goes, the focus stays in the view
    page.locator(".jp-Dialog-footer button", has_text="Delete").click()
    row.wait_for(state="detached")
    page.wait_for_function(  # no schedule left: on Refresh (with one below, it is that row's first button)
        "() => document.activeElement?.matches('.cp-Schedules button[aria-label=\"Refresh\"]')",
        timeout=10_000,
    )
    assert lab.api("GET", f"schedules/{schedule['id']}").status_code == 404
    assert page.locator(".cp-Schedules table").count() == 0  # no empty table's header under "No schedules"
    assert page.locator(".cp-Schedules .cp-Runs-empty").is_visible()
