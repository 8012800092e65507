"""The cellpipe Jupyter server extension as an ``ExtensionApp``: settings as traitlets, routes, lifecycle.

Every setting can be given the Jupyter way (``--CellpipeApp.max_concurrent_runs=4`` on the command line,
``c.CellpipeApp.max_concurrent_runs = 4`` in ``jupyter_server_config.py``); its default comes from an
environment variable (named in each help text), so a JupyterHub spawner can set them per user.

Routes come from the modules listed in :data:`ROUTE_MODULES`. Each such module defines
``routes() -> list[tuple[str, type]]`` (patterns relative to the server's base URL) and may define
``async def start(app)`` / ``async def stop(app)``, called once the server's event loop runs and when the
server stops (the embedded scheduler starts and stops that way). Adding a group of routes is one line here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import importlib
import logging
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Int, Unicode, default, validate

from jupyter_ext.errors import CellpipeError
from jupyter_ext.server.analysis import Analyser
from jupyter_ext.server.base import API, UnknownRouteHandler
from jupyter_ext.server.paths import ServerPaths
from jupyter_ext.server.presenter import RunPresenter

TRACKING_CHECK_S = 10.0  # how often the server checks that its tracking worker runs
ROUTE_MODULES: tuple[str, ...] = ("jupyter_ext.server.handlers", "jupyter_ext.server.schedules")


def _env(name: str, fallback: str = "") -> str:
    return os.environ.get(name, "").strip() or fallback


def _env_number(name: str, fallback: Any, kind: type = int) -> Any:
    text = _env(name)
    try:
        return kind(text) if text else fallback
    except ValueError:
        logging.getLogger(__name__).warning("cellpipe: ignoring %s=%r (not a number)", name, text)
        return fallback


class CellpipeApp(ExtensionApp):
    """cellpipe's HTTP API for JupyterLab: analyse notebooks, start and follow runs, manage schedules."""

    name = "cellpipe"
    load_other_extensions = True
    _tracking_keeper: asyncio.Future | None = None
    _cluster_follower: asyncio.Future | None = None
    _run_path_imported = False

    data_dir = Unicode(
        config=True,
        help="Where runs, schedules, the step cache and (by default) snapshots and MLflow live. "
        "Default: $CELLPIPE_HOME, else .cellpipe at the project root of the server's root directory.",
    )
    store_url = Unicode(
        config=True,
        help="Snapshot store URL (a directory, s3://bucket/prefix, ...). Default: $CELLPIPE_STORE, "
        "else <data_dir>/store.",
    )
    default_target = Unicode(
        config=True,
        help="Target preselected for new runs: local, job or kfp. Default: $CELLPIPE_TARGET or local.",
    )
    kfp_host = Unicode(
        config=True,
        help="Kubeflow Pipelines API URL. Default: $CELLPIPE_KFP_HOST, else $KF_PIPELINES_ENDPOINT.",
    )
    image = Unicode(config=True, help="Container image for job and kfp runs. Default: $CELLPIPE_IMAGE.")
    namespace = Unicode(
        config=True,
        help="Kubernetes namespace for job runs. Default: $CELLPIPE_NAMESPACE, else the pod's own namespace.",
    )
    max_concurrent_runs = Int(
        config=True,
        help="Runs executing at once; more wait in a queue with status 'queued'. "
        "Default: $CELLPIPE_MAX_CONCURRENT_RUNS or 2.",
    )
    kernel_pool_size = Int(
        config=True,
        help="Kernels kept started for local runs, so a run's steps need not wait for theirs (each kernel still "
        "serves one step only). Started when a notebook is first opened for analysis or run, not with the "
        "server; given back after kernel_pool_idle_timeout. Each waiting kernel holds ~24 MiB of its own "
        "memory with numpy preloaded (~17 MiB without), plus ~50 MiB for the kernel fork server they share. "
        "3 serves a first step and two parallel branches after it (0: a kernel is started per step). "
        "Default: $CELLPIPE_KERNEL_POOL_SIZE or 3.",
    )
    kernel_pool_idle_timeout = Float(
        config=True,
        help="Seconds after the last notebook analysis or run (none in progress) when the kernel pool stops its "
        "waiting kernels and their fork server, so a server nobody uses holds none; the next analysis or run "
        "starts them again (0: keep them while the server runs). Default: $CELLPIPE_KERNEL_POOL_IDLE_TIMEOUT or 600.",
    )
    kernel_pool_preload = Bool(
        config=True,
        help="Kernels waiting in the pool import the installed modules (never the project's) that the "
        "latest run's imports cells imported, so a run of that notebook does not begin by importing them. "
        "Default: $CELLPIPE_KERNEL_POOL_PRELOAD or true.",
    )
    max_body_bytes = Int(
        config=True,
        help="Largest request body accepted (bytes); larger ones get 413 before the body is read. "
        "Default: $CELLPIPE_MAX_BODY_BYTES or 16 MiB.",
    )
    analysis_workers = Int(
        config=True,
        help="Processes analysing notebooks off the event loop (0: a thread, for debugging). "
        "Default: $CELLPIPE_ANALYSIS_WORKERS or 1.",
    )
    analysis_timeout = Float(
        config=True,
        help="Seconds one analysis may take before it is stopped with an error. "
        "Default: $CELLPIPE_ANALYSIS_TIMEOUT or 60.",
    )

    analysis_max_memory = Int(
        config=True,
        help="Address space (bytes) each analysis process may use; a notebook needing more is refused "
        "with an error (0: no limit). Default: $CELLPIPE_ANALYSIS_MAX_MEMORY or 3 GiB.",
    )
    tracking_worker = Bool(
        config=True,
        help="Start the data directory's MLflow tracking worker with the server and keep it running while "
        "the server runs, so runs find MLflow imported and their record has the MLflow run from the start "
        "(false: started by the first tracked run, exits when idle). Default: $CELLPIPE_TRACKING_WORKER or true.",
    )
    tracking_wait = Float(
        config=True,
        help="Seconds a finishing run waits for the warm tracking worker to create its MLflow run, so its final "
        "record has the id (a worker still importing MLflow is not waited for; it adds the id later). "
        "Default: $CELLPIPE_TRACKING_WAIT_S or 0.5.",
    )

    cluster_follow_interval = Float(
        config=True,
        help="Seconds between the server's looks at its active Kubernetes Job / KFP runs, so that a run nobody "
        "reads (a restarted server's adopted runs, a closed browser) still turns final, with its hooks and "
        "MLflow tracking (0: only when read). Default: $CELLPIPE_CLUSTER_FOLLOW_S or 30.",
    )

    freeze_startup_objects = Bool(
        config=True,
        help="Once the server has started, move every object it holds then out of the garbage collector's "
        "view (gc.freeze): the imported modules of the server and its extensions are scanned by no later "
        "collection, so a full collection costs milliseconds instead of ~100 ms (it was the p99 of GET runs). "
        "Default: True unless $CELLPIPE_GC_FREEZE is 0.",
    )

    @default("cluster_follow_interval")
    def _default_cluster_follow_interval(self) -> float:
        return max(0.0, _env_number("CELLPIPE_CLUSTER_FOLLOW_S", 30.0, float))

    @default("data_dir")
    def _default_data_dir(self) -> str:
        from jupyter_ext.snapshot.project import project_root_of

        home = _env("CELLPIPE_HOME")
        if home:
            return str(Path(home).expanduser().resolve())
        return str(project_root_of(self._root_dir()) / ".cellpipe")

    @default("store_url")
    def _default_store_url(self) -> str:
        return _env("CELLPIPE_STORE")

    @default("default_target")
    def _default_default_target(self) -> str:
        return _env("CELLPIPE_TARGET", "local")

    @default("kfp_host")
    def _default_kfp_host(self) -> str:
        return _env("CELLPIPE_KFP_HOST") or _env("KF_PIPELINES_ENDPOINT")

    @default("image")
    def _default_image(self) -> str:
        return _env("CELLPIPE_IMAGE")

    @default("namespace")
    def _default_namespace(self) -> str:
        return _env("CELLPIPE_NAMESPACE")

    @default("freeze_startup_objects")
    def _default_freeze_startup_objects(self) -> bool:
        return _env("CELLPIPE_GC_FREEZE", "1") != "0"

    @default("max_concurrent_runs")
    def _default_max_concurrent_runs(self) -> int:
        return _env_number("CELLPIPE_MAX_CONCURRENT_RUNS", 2)

    @default("kernel_pool_size")
    def _default_kernel_pool_size(self) -> int:
        return _env_number("CELLPIPE_KERNEL_POOL_SIZE", 3)

    @default("kernel_pool_idle_timeout")
    def _default_kernel_pool_idle_timeout(self) -> float:
        return _env_number("CELLPIPE_KERNEL_POOL_IDLE_TIMEOUT", 600.0, float)

    @default("kernel_pool_preload")
    def _default_kernel_pool_preload(self) -> bool:
        return _env("CELLPIPE_KERNEL_POOL_PRELOAD", "true").lower() not in ("0", "false", "no", "off")

    @default("max_body_bytes")
    def _default_max_body_bytes(self) -> int:
        return _env_number("CELLPIPE_MAX_BODY_BYTES", 16 * 1024 * 1024)

    @default("analysis_workers")
    def _default_analysis_workers(self) -> int:
        return _env_number("CELLPIPE_ANALYSIS_WORKERS", 1)

    @default("analysis_timeout")
    def _default_analysis_timeout(self) -> float:
        return _env_number("CELLPIPE_ANALYSIS_TIMEOUT", 60.0, float)

    @default("analysis_max_memory")
    def _default_analysis_max_memory(self) -> int:
        return _env_number("CELLPIPE_ANALYSIS_MAX_MEMORY", 3 * 1024**3)

    @default("tracking_worker")
    def _default_tracking_worker(self) -> bool:
        return _env("CELLPIPE_TRACKING_WORKER", "true").lower() not in ("0", "false", "no", "off")

    @default("tracking_wait")
    def _default_tracking_wait(self) -> float:
        from jupyter_ext.services.runs import tracking_wait_default

        return tracking_wait_default()

    @validate("tracking_wait")
    def _check_tracking_wait(self, proposal: Any) -> float:
        return max(0.0, float(proposal["value"]))

    @validate("kernel_pool_idle_timeout")
    def _check_kernel_pool_idle_timeout(self, proposal: Any) -> float:
        return max(0.0, float(proposal["value"]))

    @validate("max_concurrent_runs")
    def _check_max_concurrent_runs(self, proposal: Any) -> int:
        return max(1, int(proposal["value"]))

    @validate("max_body_bytes")
    def _check_max_body_bytes(self, proposal: Any) -> int:
        return max(1024, int(proposal["value"]))

    @validate("kernel_pool_size", "analysis_workers", "analysis_max_memory")
    def _check_not_negative(self, proposal: Any) -> int:
        return max(0, int(proposal["value"]))

    # -- lifecycle -----------------------------------------------------------------------------------
    def _root_dir(self) -> Path:
        return Path(self.serverapp.root_dir if self.serverapp else os.getcwd()).expanduser().resolve()

    def initialize_settings(self) -> None:
        self.paths = ServerPaths(root=self._root_dir(), data_dir=Path(self.data_dir))
        self.analyser = Analyser(
            workers=self.analysis_workers,
            timeout=self.analysis_timeout,
            max_memory=self.analysis_max_memory,
            log=self.log,
        )
        self.run_service = self._make_run_service()
        self.run_presenter = RunPresenter(self.paths)
        self._route_modules = [importlib.import_module(name) for name in ROUTE_MODULES]
        if self.default_target not in self.target_names():
            self.log.warning(
                "cellpipe: default_target %r is not a target (%s); using 'local'",
                self.default_target,
                ", ".join(self.target_names()),
            )
            self.default_target = "local"
        self.log.info(
            "cellpipe: root %s, data %s, up to %d concurrent runs",
            self.paths.root,
            self.paths.data_dir,
            self.max_concurrent_runs,
        )

    def _make_run_service(self) -> Any:
        from jupyter_ext.services.runs import RunService

        if self.store_url and not os.environ.get("CELLPIPE_STORE"):
            # the run service (like the CLI) finds the snapshot store through this variable
            os.environ["CELLPIPE_STORE"] = self.store_url
        return RunService(
            self.paths.data_dir,
            root=self.paths.root,
            max_concurrent_runs=self.max_concurrent_runs,
            kernel_pool=self._make_kernel_pool(),
            log=self.log,
            tracking_wait_s=self.tracking_wait,
        )

    def _make_kernel_pool(self) -> Any:
        """``kernel_pool_size`` kernels kept started (each used by one step only), from the first analysis or
        run on (:meth:`notebook_opened`), given back after ``kernel_pool_idle_timeout``. With none kept, the
        pool still holds the server's kernel fork server (started by the first run, given back likewise):
        every run's kernels fork from it instead of paying Python's and ipykernel's start-up each."""
        from jupyter_ext.targets.local.kernels import WarmKernelPool

        return WarmKernelPool(
            self.kernel_pool_size,
            cwd=self.paths.root,
            preload=self.kernel_pool_preload,
            idle_timeout=self.kernel_pool_idle_timeout,
        )

    async def notebook_opened(self, notebook: Path, prelude: list[str]) -> None:
        """A user who may run it had ``notebook`` analysed (the front end does when it opens one): start the
        kernel pool if it waits for its first use, its kernels importing the installed modules the notebook's
        prelude begins with (``prelude``: its cells' sources), as a run of it would. Not on the server's
        start: a server on a hub that nobody uses holds no kernels. The first call also does what a run does
        once per process (imports, nbformat's validator), so that the first run does not."""
        from jupyter_ext.services.runs import warm_up_run_path
        from jupyter_ext.targets.local.kernels import imported_modules, leading_imports

        pool = self.run_service.kernel_pool
        if pool is not None:
            try:  # parsing a large functions cell takes the event loop milliseconds
                modules = await asyncio.to_thread(lambda: imported_modules(leading_imports(prelude)))
            except (SyntaxError, ValueError):  # a run would report it; nothing to import ahead meanwhile
                modules = []
            pool.preload(modules, local=[str(notebook.parent)])
            pool.wake()
        if not self._run_path_imported:
            self._run_path_imported = True
            await asyncio.to_thread(warm_up_run_path)

    def initialize_handlers(self) -> None:
        for module in self._route_modules:
            self.handlers.extend(module.routes())
        self.handlers.append((f"{API}/.*", UnknownRouteHandler))  # last: only what no route matched

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        self.analyser.warm_up()  # the kernel pool starts with the first analysis or run (notebook_opened)
        if self.tracking_worker:
            self._tracking_keeper = asyncio.ensure_future(self._keep_tracking_worker())
        if self.cluster_follow_interval > 0:
            self._cluster_follower = asyncio.ensure_future(self._follow_cluster_runs())
        for module in self._route_modules:
            if hasattr(module, "start"):
                await module.start(self)
        if self.freeze_startup_objects:
            # Collect once, then freeze what is left: modules, classes and settings live as long as the server.
            gc.collect()
            gc.freeze()
            self.log.info(
                "cellpipe: %d startup objects frozen out of garbage collection", gc.get_freeze_count()
            )

    async def _keep_tracking_worker(self) -> None:
        """Pre-start the tracking worker, bound to this server's life, and start it again if it was killed
        (a lock probe every ``TRACKING_CHECK_S``; a worker left idle by a CLI run is replaced once it exits)."""
        from jupyter_ext.records.owner import current_owner

        me = current_owner()
        while True:
            pid = await asyncio.to_thread(self.run_service.ensure_tracking_worker, keep_for=me)
            if pid is not None:
                self.log.info("cellpipe: MLflow tracking worker started (pid %d)", pid)
            await asyncio.sleep(TRACKING_CHECK_S)

    async def _follow_cluster_runs(self) -> None:
        """Every ``cluster_follow_interval``, refresh the active cluster runs (off the event loop)."""
        while True:
            await asyncio.sleep(self.cluster_follow_interval)
            try:
                ended = await asyncio.to_thread(self.run_service.follow_cluster_runs)
            except Exception:  # the store busy past its timeout, a bug of ours: try again next time
                self.log.exception("cellpipe: following cluster runs failed")
                continue
            if ended:
                self.log.info("cellpipe: cluster runs ended: %s", ", ".join(ended))

    async def stop_extension(self) -> None:
        for keeper in (self._tracking_keeper, self._cluster_follower):
            if keeper is not None:
                keeper.cancel()
        for module in reversed(self._route_modules):
            if hasattr(module, "stop"):
                try:
                    await module.stop(self)
                except Exception:  # one part failing to stop must not keep the others running
                    self.log.exception("cellpipe: stopping %s failed", module.__name__)
        await self.run_service.shutdown()
        if self.run_service.kernel_pool is not None:
            await self.run_service.kernel_pool.close()
        self.analyser.shutdown()
        self.log.info("cellpipe: stopped")

    # -- what the config route reports -----------------------------------------------------------------
    def public_config(self) -> dict[str, Any]:
        from jupyter_ext import __version__

        return {
            "version": __version__,
            "default_target": self.default_target,
            "targets": self.targets(),
            "max_concurrent_runs": self.max_concurrent_runs,
            "kernel_pool_size": self.kernel_pool_size,
            "max_body_bytes": self.max_body_bytes,
        }

    def target_settings(self) -> dict[str, Any]:
        """The server's settings targets are judged and configured with (None where unset), under the names
        of the targets' option fields (``host``, ``store``) and of these settings (``kfp_host``, ``store_url``)."""
        return {
            "host": self.kfp_host or None,
            "kfp_host": self.kfp_host or None,
            "image": self.image or None,
            "namespace": self.namespace or None,
            "store": self.store_url or None,
            "store_url": self.store_url or None,
            "data_dir": str(self.paths.data_dir),
        }

    def targets(self) -> list[dict[str, Any]]:
        """Every registered target, whether runs can go there from this server, and why not."""
        from jupyter_ext.targets.registry import available_targets

        return [info.to_dict() for info in available_targets(SimpleNamespace(**self.target_settings()))]

    def target_names(self) -> list[str]:
        from jupyter_ext.targets.registry import TARGETS

        return list(TARGETS)

    def check_target_available(self, name: str) -> None:
        for info in self.targets():
            if info["name"] == name and not info["available"]:
                raise CellpipeError(
                    f"target '{name}' is not available here: {info['reason']}", field="target"
                )

    def target_options(self, name: str) -> dict[str, Any]:
        """The server's settings that the target's options type has fields for (image, namespace, host)."""
        from jupyter_ext.targets.registry import get_target

        accepted = {f.name for f in dataclasses.fields(get_target(name).options_type)}
        return {key: value for key, value in self.target_settings().items() if key in accepted and value}
