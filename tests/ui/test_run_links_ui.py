"""The runs view's links out of JupyterLab: a run's page in the MLflow UI (a real `mlflow server` the run was
tracked to), a KFP run's page (a run the KFP target submitted to a loopback KFP API server), both opening a
new tab without a referrer and reachable with Tab; a run tracked to a store without a web UI shows its
MLflow run id and how to open it; a record whose link is not http(s) never becomes a link."""

# ruff: noqa: F811 (fixtures imported from other test directories are these tests' parameters)

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from jupyter_ext.records.models import (
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
    Tracking,
    TrackingStatus,
    new_run_id,
)
from jupyter_ext.records.store import RecordStore
from jupyter_ext.services.runs import RunRequest, RunService
from jupyter_ext.targets.kfp.options import KfpOptions
from jupyter_ext.targets.kfp.target import KfpTarget
from tests.support.mlflow_server import mlflow_server  # noqa: F401 (a fixture)
from tests.targets.conftest import fake_remote_store  # noqa: F401 (a fixture)
from tests.targets.kfp.conftest import kfp_server  # noqa: F401 (a fixture)
from tests.ui.conftest import UI, Lab, copy_notebooks, start_lab, stop_lab
from tests.ui.test_runs_ui import start_from_toolbar, wait_for_run_status

TRACKED_MS = 240_000  # the tracking worker imports MLflow (10-25 s on a loaded 2-core machine) first
ONE_STEP = [(["step:say"], "said = 'hello'")]


def shown_run(ui: UI, run_id: str):
    """The run, expanded in the runs view (as "Show run" in a notification does)."""
    ui.command("cellpipe:open-runs", {"run": run_id})
    run = ui.page.locator(f'.cp-Run[data-run="{run_id}"]')
    run.locator(".cp-Run-actions").wait_for(timeout=30_000)
    return run


def assert_opens_in_a_new_tab(link, href: str) -> None:
    assert link.get_attribute("href") == href
    assert link.get_attribute("target") == "_blank"
    assert {"noopener", "noreferrer"} <= set(link.get_attribute("rel").split())


def assert_tab_reaches(page, run, link) -> None:
    """From the run's Logs button, Tab moves the focus onto `link` (the links follow the buttons)."""
    run.locator(".cp-Run-actions button", has_text="Logs").focus()
    for _ in range(3):
        page.keyboard.press("Tab")
        if link.evaluate("node => node === document.activeElement"):
            return
    raise AssertionError(f"Tab from Logs never reached {link.inner_text()!r}")


@pytest.fixture(scope="module")
def tracked_lab(tmp_path_factory, mlflow_server) -> Iterator[Lab]:
    """A `jupyter lab` whose runs are tracked to the MLflow server (MLFLOW_TRACKING_URI, as users set it)."""
    root = tmp_path_factory.mktemp("tracked") / "root"
    root.mkdir()
    copy_notebooks(root)
    server = start_lab(root, settings={"MLFLOW_TRACKING_URI": mlflow_server})
    yield server
    stop_lab(server)


def test_a_run_tracked_to_an_mlflow_server_links_to_its_page(page, tracked_lab, mlflow_server):
    from mlflow.tracking import MlflowClient

    ui = UI(page, tracked_lab)
    ui.write_notebook("tracked.ipynb", ONE_STEP)
    ui.open_notebook("tracked.ipynb")
    run_id = start_from_toolbar(page)
    run = shown_run(ui, run_id)
    wait_for_run_status(page, run_id, "succeeded")
    link = run.locator("a.cp-Link", has_text="MLflow run")
    link.wait_for(timeout=TRACKED_MS)  # the view re-reads the list every 10 s once the run has ended

    # the MLflow server's own record of the run says which page is its
    (found,) = MlflowClient(tracking_uri=mlflow_server).search_runs(
        [e.experiment_id for e in MlflowClient(tracking_uri=mlflow_server).search_experiments()],
        filter_string=f"tags.`cellpipe.run_id` = '{run_id}' and tags.`mlflow.parentRunId` IS NULL",
    )
    expected = f"{mlflow_server}/#/experiments/{found.info.experiment_id}/runs/{found.info.run_id}"
    assert_opens_in_a_new_tab(link, expected)
    assert requests.get(expected.split("#")[0], timeout=30).ok  # the UI's page is there
    assert run.locator(".cp-Run-mlflow").count() == 0  # no "open with mlflow ui" hint beside a link
    assert_tab_reaches(page, run, link)
    ui.shot("19-run-mlflow-link")


def test_a_run_tracked_to_sqlite_shows_its_mlflow_run_id_and_how_to_open_it(page, lab, ui):
    ui.write_notebook("untracked_ui.ipynb", ONE_STEP)
    ui.open_notebook("untracked_ui.ipynb")
    run_id = start_from_toolbar(page)
    run = shown_run(ui, run_id)
    wait_for_run_status(page, run_id, "succeeded")
    hint = run.locator(".cp-Run-mlflow")
    hint.wait_for(timeout=TRACKED_MS)
    tracking = lab.api("GET", f"runs/{run_id}").json()["tracking"]
    store = "sqlite:///<cellpipe data>/mlflow.db"  # the server keeps its data directory's path to itself
    assert tracking["tracking_uri"] == store
    assert hint.inner_text() == f"MLflow run {tracking['mlflow_run_id'][:8]}"
    assert hint.get_attribute("title").split("\n") == [
        f"MLflow run {tracking['mlflow_run_id']}",
        f"Open with: mlflow ui --backend-store-uri {store}",
        "<cellpipe data>: $CELLPIPE_HOME, else .cellpipe in the project's root folder",
    ]
    assert run.locator("a").count() == 0  # nothing to link to
    ui.shot("20-run-mlflow-without-a-web-ui")


def test_a_kfp_run_links_to_its_page_in_the_kfp_ui(
    page,
    lab,
    ui,
    kfp_server,
    fake_remote_store,
    monkeypatch,
    tmp_path,
):
    """The KFP target submits to a loopback KFP API server from this process, into the lab's run store
    (as `cellpipe run --target kfp` does next to a running JupyterLab); the lab shows the record."""
    monkeypatch.setattr(KfpTarget, "poll_seconds", 0.0)
    kfp_server.on_get["r-4"] = [lambda fake: fake.start().step("say", "Succeeded").finish("Succeeded")]
    (lab.root / "pipelines").mkdir(exist_ok=True)
    ui.write_notebook("pipelines/on_kfp.ipynb", ONE_STEP)
    token = tmp_path / "token"
    token.write_text("t0k\n")
    options = KfpOptions(
        host=kfp_server.url, token_file=str(token), store=fake_remote_store, image="ghcr.io/acme/x:1"
    )
    request = RunRequest(
        notebook=lab.root / "pipelines" / "on_kfp.ipynb", target="kfp", target_options=options, track=False
    )
    with ThreadPoolExecutor(1) as thread:  # playwright's sync API holds this thread's event loop
        record = thread.submit(RunService(lab.root / ".cellpipe").run, request).result(timeout=120)
    assert record.status is RunStatus.SUCCEEDED, record.to_dict()
    assert record.links["kfp"] == f"{kfp_server.url}/#/runs/details/r-4"  # the kfp client's URL for the run

    ui.open_notebook("pipelines/on_kfp.ipynb")
    run = shown_run(ui, record.id)
    notebook = run.locator(".cp-Run-notebook")  # its name, cut short when long; the whole path on hover
    assert (
        notebook.inner_text() == "on_kfp.ipynb"
        and notebook.get_attribute("title") == "pipelines/on_kfp.ipynb"
    )
    link = run.locator("a.cp-Link", has_text="KFP run")
    assert_opens_in_a_new_tab(link, record.links["kfp"])
    assert_tab_reaches(page, run, link)
    ui.shot("21-run-kfp-link")


def save_finished_run(
    lab: Lab, notebook: str, links: dict[str, str], mlflow_url: str | None = None
) -> RunRecord:
    """A finished run of `notebook` with these links, written to the lab's run store as another process would."""
    now = time.time()
    record = RunRecord(
        id=new_run_id(),
        notebook=str(lab.root / notebook),
        status=RunStatus.SUCCEEDED,
        created=now,
        finished=now + 1,
        duration_s=1.0,
        steps=[StepRecord(name="say", status=StepStatus.SUCCEEDED, duration_s=0.5)],
        tracking=Tracking(status=TrackingStatus.OK, mlflow_run_id="0123456789abcdef", mlflow_url=mlflow_url),
        links=links,
    )
    RecordStore(lab.root / ".cellpipe").save_run(record)
    return record


def test_a_kfp_link_recorded_as_a_path_opens_where_the_browser_reaches_the_kfp_ui(page, lab, ui):
    """A KFP client inside the cluster records the run's page as a path. Behind the Kubeflow central dashboard
    JupyterLab and the KFP UI share one origin: the link resolves against the page's; the "KFP UI base URL"
    setting names another place (e.g. a KFP UI reached through a port-forward or its own host)."""
    ui.write_notebook("in_cluster.ipynb", ONE_STEP)
    record = save_finished_run(lab, "in_cluster.ipynb", {"kfp": "/pipeline/#/runs/details/r-9"})
    ui.open_notebook("in_cluster.ipynb")
    run = shown_run(ui, record.id)
    link = run.locator("a.cp-Link", has_text="KFP run")
    assert_opens_in_a_new_tab(link, f"{lab.url}/pipeline/#/runs/details/r-9")
    assert "KFP UI base URL" in link.get_attribute("title")  # says where it was resolved, and the setting
    assert_tab_reaches(page, run, link)
    ui.shot("21b-run-kfp-link-in-cluster")

    plugin = f"{lab.url}/lab/api/settings/cellpipe-labextension:plugin"
    headers = {"Authorization": f"token {lab.token}"}
    for wrong in ("kubeflow.example.com", "javascript:alert(1)"):  # the Settings Editor names the mistake
        answer = requests.put(
            plugin, headers=headers, json={"raw": json.dumps({"kfpUiBase": wrong})}, timeout=30
        )
        assert answer.status_code == 400 and "kfpUiBase" in answer.text, (
            wrong,
            answer.status_code,
            answer.text,
        )
    answer = requests.put(
        plugin, headers=headers, json={"raw": '{"kfpUiBase": "https://kubeflow.example.com"}'}, timeout=30
    )
    assert answer.status_code == 204, answer.text
    try:
        ui.open_notebook("in_cluster.ipynb")
        run = shown_run(ui, record.id)
        link = run.locator("a.cp-Link", has_text="KFP run")
        expected = "https://kubeflow.example.com/pipeline/#/runs/details/r-9"
        page.wait_for_function(  # the setting may load after the view's first render
            "([link, href]) => link.getAttribute('href') === href", arg=[link.element_handle(), expected]
        )
        assert_opens_in_a_new_tab(link, expected)
    finally:
        requests.put(plugin, headers=headers, json={"raw": "{}"}, timeout=30)


@pytest.mark.parametrize(
    "links, mlflow_url",
    [
        (
            {
                "kfp": "javascript:alert(document.domain)",
                "mlflow": "data:text/html,<script>alert(1)</script>",
            },
            None,
        ),
        ({"kfp": " JavaScript:alert(1)"}, "jAvAsCrIpT:alert(1)"),
        ({"kfp": "//evil.example/pipeline/#/runs/details/r-4", "mlflow": "/\\evil.example/x"}, None),
    ],
)
def test_a_link_that_is_not_http_is_never_rendered(page, lab, ui, links, mlflow_url):
    """A record is data from a store other processes write: what is not an http(s) URL stays text."""
    ui.write_notebook("unsafe.ipynb", ONE_STEP)
    record = save_finished_run(lab, "unsafe.ipynb", links, mlflow_url)
    ui.open_notebook("unsafe.ipynb")
    run = shown_run(ui, record.id)
    assert run.locator("a").count() == 0
    assert page.locator("a[href*='script:' i], a[href^='data:' i]").count() == 0
    assert run.locator(".cp-Run-mlflow").inner_text() == "MLflow run 01234567"  # the id, as text
    ui.shot("22-run-unsafe-links-not-rendered")
