"""The Jupyter server's warm kernel pool: steps take started kernels, each kernel runs one step only, in the
notebook's directory, and is gone after it."""

from __future__ import annotations

import asyncio
import os
import time

import psutil
import pytest

from jupyter_ext.records.models import RunStatus
from jupyter_ext.services.runs import RunRequest, RunService
from jupyter_ext.targets.local.kernels import WarmKernelPool, kernel_pid
from tests.tracking.test_background_tracking import autogroup_nice, autogroups_on

pytestmark = pytest.mark.slow

CELLS = [
    (["imports"], "import os"),
    (["step:a"], "pid_a = os.getpid()\ncwd_a = os.getcwd()"),
    (["step:b"], "pid_b = os.getpid()\nseen_b = pid_a"),
    (["step:c"], "pid_c = os.getpid()\nsame_dir = float(cwd_a == os.getcwd())\nseen_c = pid_b"),
    (["pipeline-metrics"], "pid_a\npid_b\npid_c\nsame_dir"),
]


async def filled(pool: WarmKernelPool, count: int) -> None:
    for _ in range(1200):
        if pool.ready >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the pool did not fill")


def test_steps_take_warm_kernels_once_each_in_the_notebooks_directory(write_notebook, data_dir, tmp_path):
    notebook = write_notebook(CELLS)
    elsewhere = tmp_path / "server-root"
    elsewhere.mkdir()

    async def scenario():
        pool = WarmKernelPool(2, cwd=elsewhere)  # started before the notebook's directory is known
        pool.start()
        await filled(pool, 2)
        waiting = {k.km.provisioner.process.pid for k in pool.waiting}
        service = RunService(data_dir, kernel_pool=pool)
        try:
            queued = await service.submit(RunRequest(notebook=notebook, track=False, source="jupyterlab"))
            for _ in range(1200):
                record = service.get(queued.id)
                if record.is_final:
                    break
                await asyncio.sleep(0.1)
            await filled(pool, 2)  # refilled with new kernels
            return record, pool.handed_out, waiting, {k.km.provisioner.process.pid for k in pool.waiting}
        finally:
            await service.shutdown()
            await pool.close()

    record, handed_out, waiting, refilled = asyncio.run(scenario())
    assert record.status is RunStatus.SUCCEEDED, record.error or [s.error for s in record.steps]
    pids = [int(record.metrics[f"pid_{s}"]) for s in "abc"]
    assert len(set(pids)) == 3  # a fresh kernel per step
    assert handed_out >= 1 and set(pids) & waiting  # the pool's kernels were used
    assert not refilled & waiting  # and never come back into the pool
    assert record.metrics["same_dir"] == 1.0
    deadline = time.time() + 60
    while any(psutil.pid_exists(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(psutil.pid_exists(pid) for pid in pids)  # used kernels are shut down


def test_a_pool_of_another_kernel_or_closed_hands_out_nothing(tmp_path):
    async def scenario():
        pool = WarmKernelPool(1, cwd=tmp_path)
        pool.start()
        await filled(pool, 1)
        other = await pool.take("ir", tmp_path)
        pid = pool.waiting[0].km.provisioner.process.pid
        sockets = pool.waiting[0].socket_dir
        await pool.close()
        return other, await pool.take("python3", tmp_path), pid, sockets

    other, after_close, pid, sockets = asyncio.run(scenario())
    assert other is None and after_close is None
    assert not psutil.pid_exists(pid)
    assert sockets is not None and not sockets.exists()  # a waiting kernel is on IPC too; gone with it


def test_a_runs_kernels_from_the_shared_pool_are_warmed_up_for_its_prelude_when_claimed(tmp_path):
    """A server's waiting kernel knows nothing of the run; once a run claims it (for a step ready now or
    next in line) the run's prelude imports are loaded at once, as in the run's own kernels, not when
    the step's prelude cell executes."""
    from jupyter_ext.targets.local.kernels import KernelPool

    async def scenario():
        shared = WarmKernelPool(1, cwd=tmp_path)
        shared.start()
        await filled(shared, 1)
        waiting = shared.waiting[0].km.provisioner.process.pid
        pool = KernelPool("python3", tmp_path, size=1, warmup="import colorsys", shared=shared)
        pool.expect(1)
        kernel = await asyncio.wait_for(pool.acquire(), 120)
        try:
            reply = await kernel.client.execute_interactive(
                "import sys\nloaded = 'colorsys' in sys.modules", user_expressions={"l": "loaded"}, timeout=60
            )
            return waiting, kernel.km.provisioner.process.pid, reply["content"]["user_expressions"]["l"]
        finally:
            pool.release(kernel)
            await pool.close()
            await shared.close()

    waiting, taken, loaded = asyncio.run(scenario())
    assert taken == waiting  # the shared kernel, not a new one
    assert loaded["data"]["text/plain"] == "True"


def test_a_kernel_still_starting_is_taken_rather_than_a_new_one_started(tmp_path):
    async def scenario():
        pool = WarmKernelPool(1, cwd=tmp_path)
        pool.start()
        try:
            starting = len(pool._starting)
            kernel = await pool.take("python3", tmp_path)  # at once: the pool's kernel is not ready yet
            if kernel is not None:
                await kernel.shutdown()
            return starting, kernel is not None, pool.handed_out
        finally:
            await pool.close()

    starting, taken, handed_out = asyncio.run(scenario())
    assert starting == 1
    assert taken and handed_out == 1  # the run waited for it instead of starting (and paying for) its own


@pytest.mark.parametrize("preload", [True, False])
def test_waiting_kernels_import_the_latest_runs_installed_modules_but_not_the_projects(tmp_path, preload):
    """After a run, the pool's new kernels import the installed modules its prelude imported (a run of the
    same notebook finds them loaded), with nothing bound in the user's namespace and nothing executed as a
    cell; a module of the user's project (under the server's root) is never imported ahead: it may change
    before the run, which must execute its snapshot's code. With the server's ``kernel_pool_preload`` off
    nothing is imported ahead."""
    from jupyter_ext.targets.local.kernels import KernelPool

    (tmp_path / "projectmodule.py").write_text("import sys\nsys.stderr.write('imported ahead')\n")
    probe = (
        "import sys\nfound = (sorted(m for m in ('colorsys', 'projectmodule') if m in sys.modules), "
        "'colorsys' in dir(), len(In))"
    )

    async def scenario():
        shared = WarmKernelPool(1, cwd=tmp_path, preload=preload)
        shared.start()
        await filled(shared, 1)
        run = KernelPool(
            "python3", tmp_path, size=1, warmup="import colorsys\nimport projectmodule", shared=shared
        )
        run.expect(1)
        kernel = await asyncio.wait_for(run.acquire(), 120)
        run.release(kernel)
        await run.close()
        await filled(shared, 1)  # the replacement, started after the run named its modules
        waiting = shared.waiting[0]
        try:
            reply = await waiting.client.execute_interactive(
                probe, user_expressions={"f": "found"}, timeout=60
            )
            return reply["content"]["user_expressions"]["f"]["data"]["text/plain"]
        finally:
            await shared.close()

    imported = "['colorsys']" if preload else "[]"
    assert asyncio.run(scenario()) == f"({imported}, False, 2)"  # In: only the probe itself


def test_a_kernel_that_imported_another_notebooks_modules_is_not_handed_to_this_one(tmp_path):
    """A waiting kernel that imported ``colorsys`` ahead serves a run whose imports begin with it, but not
    one whose prelude imports something else first (or sets the environment first: then its leading
    imports are none): that run would find a module loaded before its own code ran. It is stopped."""

    async def scenario():
        shared = WarmKernelPool(1, cwd=tmp_path)
        shared.preload(["colorsys"], local=[])
        shared.start()
        await filled(shared, 1)
        stale_pid = shared.waiting[0].km.provisioner.process.pid
        refused = await shared.take("python3", tmp_path, ["json", "colorsys"])
        await filled(shared, 1)
        taken = await shared.take("python3", tmp_path, ["colorsys", "json"])
        try:
            reply = await taken.client.execute_interactive(
                "import sys", user_expressions={"f": "'colorsys' in sys.modules"}, timeout=60
            )
            return refused, stale_pid, reply["content"]["user_expressions"]["f"]["data"]["text/plain"]
        finally:
            await taken.shutdown()
            await shared.close()

    refused, stale_pid, loaded = asyncio.run(scenario())
    assert refused is None and not psutil.pid_exists(stale_pid)
    assert loaded == "True"


def test_the_shared_pool_refills_only_once_a_runs_kernels_have_started(tmp_path):
    """On few cores a refill took the CPU the run's next kernel needed: the shared pool starts none while a
    run's kernels are starting, and refills once they are ready."""
    from jupyter_ext.targets.local.kernels import KernelPool

    async def scenario():
        shared = WarmKernelPool(1, cwd=tmp_path)
        shared.start()
        await filled(shared, 1)
        run = KernelPool("python3", tmp_path, size=2, shared=shared)
        run.expect(2)
        seen_while_starting = []
        while run._ready.qsize() < 2:
            if run._starting and shared.handed_out:
                seen_while_starting.append(len(shared._starting) + shared.ready)
            await asyncio.sleep(0.005)
        kernels = [await run.acquire(), await run.acquire()]
        refilled = len(shared._starting) + shared.ready
        for kernel in kernels:
            run.release(kernel)
        await run.close()
        await shared.close()
        return seen_while_starting, refilled, shared.handed_out

    seen, refilled, handed_out = asyncio.run(scenario())
    assert handed_out == 1  # one kernel came from the shared pool, the other was the run's own
    assert seen and set(seen) == {0}  # no refill while the run's own kernel was starting
    assert refilled == 1  # and one as soon as it was ready


def test_a_preloaded_kernel_never_serves_where_the_project_shadows_what_it_imported(tmp_path):
    """``utils.py`` beside a notebook and an installed ``utils`` imported ahead: the step's ``import utils``
    must find the project's own, so such a kernel is not handed out there (a new one is); elsewhere it is."""
    shadowing, plain = tmp_path / "project", tmp_path / "other"
    shadowing.mkdir()
    plain.mkdir()
    (shadowing / "colorsys.py").write_text("SHADOW = True\n")

    async def scenario():
        pool = WarmKernelPool(2, cwd=tmp_path)
        pool.preload(["colorsys"], local=[])
        pool.start()
        await filled(pool, 2)
        waiting = {k.km.provisioner.process.pid for k in pool.waiting}
        # both waiting kernels imported colorsys ahead, as the run's prelude begins
        refused = await pool.take("python3", shadowing, ["colorsys"])
        kernel = await pool.take(
            "python3", plain, ["colorsys"]
        )  # a refill (preloaded too), nothing shadows it
        try:
            reply = await kernel.client.execute_interactive(
                "import os, sys\nseen = (os.getcwd(), 'colorsys' in sys.modules)",
                user_expressions={"s": "seen"}, timeout=60,
            )  # fmt: skip
            return refused, waiting, kernel.km.provisioner.process.pid, reply["content"]["user_expressions"]
        finally:
            await kernel.shutdown()
            await pool.close()

    refused, waiting, taken, seen = asyncio.run(scenario())
    assert refused is None
    assert taken not in waiting
    assert seen["s"]["data"]["text/plain"] == repr((str(plain), True))
    deadline = time.time() + 60
    while any(psutil.pid_exists(pid) for pid in waiting) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(psutil.pid_exists(pid) for pid in waiting)  # the refused kernels were shut down


@pytest.mark.skipif(
    not autogroups_on(), reason="the kernel gives new sessions no scheduling group of their own"
)
def test_a_kernel_importing_ahead_during_a_run_yields_the_cpu_until_a_run_waits_for_it(tmp_path, monkeypatch):
    """While a run is in progress, a waiting kernel imports the notebook's modules at autogroup nice 19 (the
    run's steps get the CPU first); at 0 again as soon as a run waits for it, or when the runs end."""
    site, root = tmp_path / "site", tmp_path / "root"
    site.mkdir()
    root.mkdir()
    (site / "slowmod.py").write_text("import time\ntime.sleep(3)\n")  # an installed module, slow to import
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))

    async def importing(pool: WarmKernelPool) -> int:
        for _ in range(1200):
            if pool._yielding:
                return next(iter(pool._yielding))
            await asyncio.sleep(0.02)
        raise AssertionError("no kernel imported ahead at idle priority")

    async def scenario():
        pool = WarmKernelPool(1, cwd=root)
        pool.preload(["slowmod"], local=[])
        pool.begin_run()  # a run is in progress: the pool starts, its kernel imports at idle priority
        try:
            first = await importing(pool)
            during_the_run = autogroup_nice(first)
            taking = asyncio.ensure_future(pool.take("python3", root, ["slowmod"]))
            await asyncio.sleep(0.3)
            once_a_run_waits = autogroup_nice(first)
            kernel = await taking
            handed_out = kernel_pid(kernel)
            await kernel.shutdown()
            second = await importing(pool)  # the refill, while the run still runs
            pool.end_run()
            once_the_runs_end = autogroup_nice(second)
            return during_the_run, once_a_run_waits, handed_out == first, once_the_runs_end
        finally:
            await pool.close()

    assert asyncio.run(scenario()) == (19, 0, True, 0)

    async def waited_for():
        pool = WarmKernelPool(1, cwd=root)
        pool.preload(["slowmod"], local=[])
        pool.begin_run()
        try:  # a run waits for the kernel from its start: it never imports at idle priority
            taking, yielded = asyncio.ensure_future(pool.take("python3", root, ["slowmod"])), set()
            while not taking.done():
                yielded |= pool._yielding
                await asyncio.sleep(0.02)
            await taking.result().shutdown()
            return yielded
        finally:
            await pool.close()

    assert asyncio.run(waited_for()) == set()
