"""Notebook analysis for the UI, done off the server's event loop.

Analysing is pure CPU work on client input (a multi-megabyte cell takes seconds), so it runs in a small
pool of worker processes: the server keeps answering every other request meanwhile, and an analysis that
overruns ``timeout`` is stopped by a timer in its worker (a worker that does not answer at all is replaced),
not left to eat a core. The worker returns plain
dicts (a user mistake travels back as its ``to_dict()``), never exceptions, so nothing depends on pickling
error classes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from typing import Any

from jupyter_ext.errors import CellpipeError

WORKER_START_GRACE_S = 60.0  # a fresh worker imports the analysis code first (seconds on a busy machine)
WARNING_KEYS = ("message", "cell", "step", "field", "hint", "text")


def analyse_notebook(path: str, label: str, content: bytes | None) -> dict[str, Any]:
    """The analyse route's answer for the notebook at ``path`` (or ``content``), named ``label`` in it."""
    from jupyter_ext.pipeline.build import build_pipeline
    from jupyter_ext.pipeline.render import text_dag, to_dot, to_svg

    pipeline = build_pipeline(
        path, content=content, label=label
    )  # errors and warnings name the label, not the root
    return {
        "pipeline": pipeline.to_dict(),
        "levels": text_dag(pipeline),
        "dot": to_dot(pipeline),
        "svg": to_svg(pipeline),
        # CellpipeWarning.to_dict()s: tag typos with "did you mean", code before the first step, ...
        "warnings": [{key: warning.get(key) for key in WARNING_KEYS} for warning in pipeline.warnings],
    }


class _Overrun(Exception):
    """Raised in a worker by its timer when one analysis runs past its time."""


def _on_timer(signum: int, frame: Any) -> None:
    raise _Overrun


def _overrun_error(label: str, timeout: float) -> CellpipeError:
    return CellpipeError(
        f"analysis took longer than {timeout:g} s and was stopped",
        notebook=label,
        hint="split very large cells, or raise CellpipeApp.analysis_timeout",
    )


def _analyse_in_worker(path: str, label: str, content: bytes | None, timeout: float) -> dict[str, Any]:
    """Runs in a worker: every outcome as data. Unexpected errors are reported, with their type, as such.

    In a worker process a timer interrupts the analysis after ``timeout`` s of its own (not counting the
    worker's start), and the worker stays usable for the next one."""
    timed = timeout > 0 and threading.current_thread() is threading.main_thread()
    if timed:
        signal.signal(signal.SIGALRM, _on_timer)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return {"result": analyse_notebook(path, label, content)}
    except _Overrun:
        return {"error": _overrun_error(label, timeout).to_dict()}
    except CellpipeError as exc:
        return {"error": exc.to_dict()}
    except RecursionError:
        return {
            "error": CellpipeError("the notebook is nested too deeply to analyse", notebook=label).to_dict()
        }
    except MemoryError:
        return {"error": CellpipeError("the notebook is too large to analyse", notebook=label).to_dict()}
    except Exception as exc:
        import traceback

        return {"unexpected": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _start_worker(max_bytes: int) -> None:
    """Worker initializer: the worker ends with the server, and gets a memory limit."""
    _exit_with_parent()
    _limit_memory(max_bytes)


def _exit_with_parent() -> None:
    """End this worker when the process that started it ends, however it ends. A pool's worker waits for
    work on a pipe whose writing end it holds itself (the pickled call queue), so a server killed with
    SIGKILL (the OOM killer, a culled pod) would leave it waiting forever, holding its memory."""
    parent = multiprocessing.parent_process()
    if parent is None:  # not started by multiprocessing
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="cellpipe-parent-watch", daemon=True).start()


def _limit_memory(max_bytes: int) -> None:
    """A notebook that would need more address space gets MemoryError (a clean 400), instead of pushing the
    machine into swap or the OOM killer."""
    if max_bytes > 0:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = max_bytes if hard == resource.RLIM_INFINITY else min(max_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _warm() -> bool:
    """Analyse a two-step notebook: the first analysis pays for imports (nbformat's schema validation alone
    takes seconds on a busy machine) and later ones should not."""
    tiny = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [
            {"cell_type": "code", "id": "a", "metadata": {"tags": ["step:a"]}, "source": "x = 1", "outputs": [], "execution_count": None},
            {"cell_type": "code", "id": "b", "metadata": {"tags": ["step:b"]}, "source": "y = x", "outputs": [], "execution_count": None},
        ],
    }  # fmt: skip
    analyse_notebook("warm-up.ipynb", "warm-up.ipynb", json.dumps(tiny).encode())
    return True


def error_from_dict(data: dict[str, Any]) -> CellpipeError:
    return CellpipeError(
        data.get("message") or "error",
        notebook=data.get("notebook"),
        cell=data.get("cell"),
        step=data.get("step"),
        field=data.get("field"),
        hint=data.get("hint"),
    )


class Analyser:
    """A pool of ``workers`` processes (0: one thread, for debugging) that analyse notebooks, each with at
    most ``max_memory`` bytes of address space (0: no limit)."""

    def __init__(
        self,
        *,
        workers: int = 1,
        timeout: float = 60.0,
        max_memory: int = 0,
        log: logging.Logger | None = None,
    ) -> None:
        self.workers = workers
        self.timeout = timeout
        self.max_memory = max_memory
        self.log = log or logging.getLogger(__name__)
        self._pool: concurrent.futures.Executor | None = None
        self._lock = threading.Lock()
        self._free: asyncio.Semaphore | None = None  # made in the server's event loop, on first use

    def _executor(self) -> concurrent.futures.Executor:
        with self._lock:
            if self._pool is None:
                if self.workers <= 0:
                    self._pool = concurrent.futures.ThreadPoolExecutor(
                        1, thread_name_prefix="cellpipe-analysis"
                    )
                else:
                    # spawn, not fork: the server process has threads (and an event loop) a fork would copy
                    self._pool = concurrent.futures.ProcessPoolExecutor(
                        self.workers,
                        mp_context=multiprocessing.get_context("spawn"),
                        initializer=_start_worker,
                        initargs=(self.max_memory,),
                    )
            return self._pool

    def warm_up(self) -> None:
        """Start the workers now, so the first analysis does not pay for process start and imports."""
        self._executor().submit(_warm)

    async def analyse(self, path: str, label: str, content: bytes | None) -> dict[str, Any]:
        # Wait for a free worker here, not in the pool's queue: the time limit then counts the analysis
        # only, and a burst of requests (a UI analysing as the user types) cannot time each other out.
        if self._free is None:
            self._free = asyncio.Semaphore(max(1, self.workers))
        async with self._free:
            return await self._analyse(path, label, content)

    async def _analyse(self, path: str, label: str, content: bytes | None) -> dict[str, Any]:
        pool = self._executor()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(pool, _analyse_in_worker, path, label, content, self.timeout)
        try:
            # the worker stops itself on time; this is the backstop for one that is stuck or still starting
            outcome = await asyncio.wait_for(future, self.timeout + WORKER_START_GRACE_S)
        except TimeoutError:
            self._replace(pool)
            raise _overrun_error(label, self.timeout) from None
        except concurrent.futures.process.BrokenProcessPool:
            self._replace(pool)
            raise CellpipeError(
                "the analysis worker died (out of memory?) on this notebook", notebook=label
            ) from None
        if "error" in outcome:
            raise error_from_dict(outcome["error"])
        if "unexpected" in outcome:
            self.log.error("cellpipe: analysing %s failed unexpectedly:\n%s", label, outcome["traceback"])
            raise CellpipeError(
                f"cellpipe could not analyse this notebook ({outcome['unexpected'][:200]})",
                notebook=label,
                hint="this is a cellpipe bug: please report it with the notebook",
            )
        return outcome["result"]

    def _replace(self, pool: concurrent.futures.Executor) -> None:
        """Drop a pool whose worker is stuck or dead; the next analysis starts a fresh one."""
        with self._lock:
            if self._pool is pool:
                self._pool = None
        _stop(pool)

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            _stop(pool)


def _stop(pool: concurrent.futures.Executor) -> None:
    # ProcessPoolExecutor cannot cancel a running call: end its processes (a private attribute, but the
    # only handle on them; absent for threads, where the call finishes on its own).
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
