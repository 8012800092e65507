"""Browser tests of the JupyterLab extension: a real `jupyter lab` process, headless Debian chromium
driven by Playwright (Python). No browser download: chromium comes from apt (the README's test command
installs it). Screenshots go to tests/ui/artifacts/ (or $CELLPIPE_UI_ARTIFACTS) for people to look at.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
import requests
from nbformat.v4 import new_code_cell, new_notebook

from tests.support.processes import ending_with_this_process, stop_process

REPO = Path(__file__).parents[2]
EXAMPLES = REPO / "examples"
NOTEBOOKS = REPO / "tests" / "notebooks"
ARTIFACTS = Path(os.environ.get("CELLPIPE_UI_ARTIFACTS", Path(__file__).parent / "artifacts"))
TOKEN = "cellpipe-ui-test-token"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise pytest.UsageError(
            "the browser tests need Debian's chromium: apt-get install -y chromium (the README's test command does it)"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Lab:
    url: str
    root: Path
    token: str
    log: Path
    process: subprocess.Popen

    def api(self, method: str, route: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {self.token}"}
        return requests.request(
            method, f"{self.url}/cellpipe/api/{route}", headers=headers, timeout=60, **kwargs
        )

    def notebook(self, name: str) -> dict:
        return json.loads((self.root / name).read_text())


def start_lab(
    root: Path, *extra: str, pythonpath: tuple[str, ...] = (), settings: dict[str, str] | None = None
) -> Lab:
    """`jupyter lab` on a free loopback port, serving `root`; waits until it answers. `settings`: environment
    variables for it (e.g. MLFLOW_TRACKING_URI), over the cleaned environment."""
    port = free_port()
    config_dir = root.parent / f"jupyter-config-{port}"
    config_dir.mkdir()
    environment = {
        **os.environ,
        "CELLPIPE_HOME": str(root / ".cellpipe"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "JUPYTER_CONFIG_DIR": str(config_dir),  # no user settings leak in
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), *pythonpath, os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    environment.pop("MLFLOW_TRACKING_URI", None)
    environment.update(settings or {})
    built = REPO / "jupyter_ext" / "labextension"
    if (built / "package.json").is_file():
        # this checkout's build, ahead of any installed copy: a worktree tests its own front end
        data_dir = root.parent / f"jupyter-data-{port}"
        (data_dir / "labextensions").mkdir(parents=True)
        (data_dir / "labextensions" / "cellpipe-labextension").symlink_to(built)
        environment["JUPYTER_PATH"] = os.pathsep.join(
            p for p in (str(data_dir), os.environ.get("JUPYTER_PATH", "")) if p
        )
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: tests run commands as the menus do
        f"--LabApp.workspaces_dir={root.parent / f'workspaces-{port}'}",
        f"--LabApp.user_settings_dir={root.parent / f'settings-{port}'}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *extra,
    ]  # fmt: skip
    # no "get notified about Jupyter news?" toast over the screenshots (offline anyway)
    news = (
        root.parent
        / f"settings-{port}"
        / "@jupyterlab"
        / "apputils-extension"
        / "notification.jupyterlab-settings"
    )
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false"}')
    log = root.parent / f"lab-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            cmd, env=environment, stdout=out, stderr=subprocess.STDOUT, preexec_fn=ending_with_this_process()
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_lab(url, process, log)
    except BaseException:  # whatever stopped the wait, no server is left running behind the tests
        process.kill()
        process.wait(timeout=30)
        raise
    return Lab(url=url, root=root, token=TOKEN, log=log, process=process)


def wait_for_lab(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"jupyter lab exited: {log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/api/status", headers={"Authorization": f"token {TOKEN}"}, timeout=2).ok:
                return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or slow on a busy machine
            pass
        time.sleep(0.3)
    raise AssertionError(f"jupyter lab did not start in 120 s: {log.read_text()[-3000:]}")


def stop_lab(lab: Lab) -> None:
    stop_process(lab.process)


def copy_notebooks(root: Path) -> None:
    shutil.copy(EXAMPLES / "wine_classifier.ipynb", root / "wine_classifier.ipynb")
    shutil.copy(NOTEBOOKS / "kale_legacy.ipynb", root / "kale_legacy.ipynb")


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("ui") / "root"
    root.mkdir()
    copy_notebooks(root)
    server = start_lab(root)
    yield server
    stop_lab(server)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.console_errors = errors  # type: ignore[attr-defined]
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        page.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"))
    context.close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


class UI:
    """What the tests do in the browser, in a user's words."""

    def __init__(self, page, lab: Lab) -> None:
        self.page = page
        self.lab = lab

    def shot(self, name: str) -> Path:
        """Save a screenshot under the artifacts directory (for people to look at)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        # a notification sliding in or out would be caught cut off at the window's edge: wait for it to
        # stand still (the toasts' own animations only; their autoClose progress bars run on)
        self.page.wait_for_function(
            "() => [...document.querySelectorAll('.Toastify__toast')]"
            ".every(toast => toast.getAnimations().every(a => a.playState !== 'running'))",
            timeout=10_000,
        )
        self.page.screenshot(path=str(path))
        return path

    def open_notebook(self, name: str) -> None:
        """Open a notebook in a fresh workspace and wait until its cells and chips are drawn."""
        self.page.goto(f"{self.lab.url}/lab/tree/{name}?reset&token={self.lab.token}")
        self.page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        code_cells = sum(c["cell_type"] == "code" for c in self.lab.notebook(name)["cells"])
        self.page.wait_for_function(
            f"() => document.querySelectorAll('.jp-Notebook .jp-CodeCell .cp-Chip').length >= {code_cells}",
            timeout=30_000,
        )

    def command(self, command: str, args: dict | None = None):
        """Execute a JupyterLab command the way a menu or shortcut does."""
        return self.page.evaluate(
            "([command, args]) => window.jupyterapp.commands.execute(command, args)", [command, args or {}]
        )

    def open_panel(self) -> None:
        """Click the pipeline panel's tab in the right sidebar and wait for the graph (or its error)."""
        self.page.click('.jp-SideBar.jp-mod-right li[data-id="cellpipe-pipeline"]')
        self.page.wait_for_selector(".cp-Panel .cp-Dag, .cp-Panel .cp-Banner", timeout=30_000)

    def chip_labels(self) -> list[str]:
        return self.page.eval_on_selector_all(
            ".jp-Notebook .jp-CodeCell .cp-Chip", "nodes => nodes.map(n => n.textContent)"
        )

    def select_cell(self, index: int) -> None:
        """Click a cell (0-based) and leave edit mode, as a user does before a command-mode key."""
        self.page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputPrompt").click()
        self.page.keyboard.press("Escape")

    def set_tags(self, index: int, tags: list[str]) -> None:
        """Set a cell's tags as JupyterLab's property inspector does (cell metadata), not via cellpipe."""
        self.page.evaluate(
            "([index, tags]) => window.jupyterapp.shell.currentWidget.content.widgets[index].model"
            ".setMetadata('tags', tags)",
            [index, tags],
        )

    def cell_tags(self, index: int) -> list[str] | None:
        """A cell's tags in the notebook model (what a save writes), None when it has none."""
        return self.page.evaluate(
            "index => window.jupyterapp.shell.currentWidget.content.widgets[index].model.getMetadata('tags')"
            " ?? null",
            index,
        )

    def toast(self, text: str) -> None:
        """Wait (briefly) for a notification toast containing `text`; on a busy machine JupyterLab may
        not pop it up at all, which is no failure here (see `notification`)."""
        with contextlib.suppress(Exception):  # playwright's TimeoutError
            self.page.locator(".Toastify__toast", has_text=text).first.wait_for(timeout=5_000)

    def notification(self, text: str):
        """The notification containing `text`: its toast, or (when JupyterLab did not pop the toast up,
        which happens on a busy machine) its entry in the notification center behind the status bar bell."""
        toast = self.page.locator(".Toastify__toast", has_text=text)
        try:
            toast.wait_for(timeout=15_000)
            return toast
        except Exception:  # playwright's TimeoutError
            self.page.locator(".jp-Notification-Status").click()
            entry = self.page.locator(".jp-Notification-List-Item", has_text=text)
            entry.wait_for(timeout=15_000)
            return entry

    def assert_drop_downs_look_like_jupyterlabs(self, scope) -> None:
        """Every drop-down in `scope` is drawn as in JupyterLab's own dialogs: a styled select with the caret
        icon inside its right end (a bare styled select has none and reads as a text field)."""
        carets = scope.locator("select").evaluate_all(
            """selects => selects.map(select => {
              const icon = select.parentElement.querySelector(':scope > span > svg');
              if (!icon || !select.matches('.jp-select-wrapper > select.jp-mod-styled')) return select.name || 'select';
              const s = select.getBoundingClientRect(), i = icon.getBoundingClientRect();
              const inside = i.width > 0 && i.left >= s.left + s.width / 2 && i.right <= s.right
                && i.top >= s.top && i.bottom <= s.bottom;
              return inside ? null : select.name || 'select';
            })"""
        )
        assert carets and not any(carets), f"drop-downs without JupyterLab's caret: {carets}"

    def copy_notebook(self, source: str, name: str) -> None:
        (self.lab.root / name).write_text((self.lab.root / source).read_text())

    def write_notebook(self, name: str, cells: list[tuple[list[str], str]]) -> None:
        """A notebook of code cells, each (tags, source)."""
        notebook = new_notebook(
            cells=[new_code_cell(source, metadata={"tags": tags} if tags else {}) for tags, source in cells]
        )
        notebook.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nbformat.write(notebook, self.lab.root / name)


@pytest.fixture
def ui(page, lab) -> UI:
    return UI(page, lab)


@pytest.fixture(scope="session")
def read_only_lab(tmp_path_factory) -> Iterator[Lab]:
    """A second `jupyter lab` whose user may read but not write or execute (readonly_authorizer.py)."""
    root = tmp_path_factory.mktemp("readonly") / "root"
    root.mkdir()
    copy_notebooks(root)
    server = start_lab(
        root,
        "--ServerApp.authorizer_class=readonly_authorizer.ReadOnlyAuthorizer",
        pythonpath=(str(Path(__file__).parent),),
    )
    yield server
    stop_lab(server)


@pytest.fixture
def read_only_ui(page, read_only_lab) -> UI:
    return UI(page, read_only_lab)
