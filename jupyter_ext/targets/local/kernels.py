"""A pool of warm Jupyter kernels, so that a step does not wait for its kernel to start.

Starting a kernel costs about a second; a pipeline of N steps would pay it N times in a row. The pool starts
kernels ahead of need: while one step runs, the next step's kernel is already starting. Every step still
gets a fresh kernel (none is reused), so steps stay isolated exactly as in a pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from jupyter_ext.runtime.kernel import Kernel, start_kernel, warm_up
from jupyter_ext.runtime.kernel_fork import KernelForkServer
from jupyter_ext.util import IDLE_AUTOGROUP_NICE, set_autogroup_nice


class KernelPool:
    def __init__(
        self, kernel_name: str, cwd: str | Path, size: int, *, warmup: str = "", log: str | Path | None = None,
        shared: WarmKernelPool | None = None, cores: int = 0,
    ) -> None:  # fmt: skip
        self.kernel_name = kernel_name
        # kernels start ahead on a core no step or other start is using (a running step would lose the
        # start's CPU); one is always started for a waiting step, and for the steps next in line (ahead())
        self.cores = max(1, cores or os.cpu_count() or 1)
        self.shared = shared  # the server's warm kernels, taken first
        self.cwd = str(cwd)
        self.size = max(1, size)
        self.warmup = warmup  # code run silently once the kernel is up (the prelude's imports)
        self.log = Path(log) if log else None
        # the server's fork server, or one for this run (started with the first kernel, closed with the pool)
        self.forker = shared.forker if shared is not None else KernelForkServer(log=self.log)
        self._own_forker = shared is None
        self.modules = imported_modules(warmup) if shared is not None else []  # what the warm-up imports
        if shared is not None:  # the shared pool's next kernels import this run's installed modules
            shared.preload(self.modules, local=[self.cwd])
            shared.begin_run()  # ended in close()
        self._ready: asyncio.Queue = asyncio.Queue()
        self._starting: set[asyncio.Task] = set()
        self._handed_out: set = set()
        self._stopping: set[asyncio.Task] = set()
        self._failures: list[BaseException] = []
        self._wanted = 0  # kernels still to hand out
        self._ahead = 0  # kernels the steps after the running ones will take (started on a busy core too)
        self._waiters = 0  # steps in acquire() now
        self._changed = asyncio.Event()  # a start ended (a kernel is ready, or a start failed)
        self._closed = False
        self._holding = False  # the shared pool's refills wait while this run's kernels start
        self._ended = False  # told the shared pool this run no longer uses its fork server

    def expect(self, count: int) -> None:
        """Tell the pool how many kernels will be asked for in total (it never starts more)."""
        self._wanted = count
        self._fill()

    def ahead(self, count: int) -> None:
        """Tell the pool how many steps become ready when the running ones end: their kernels start now
        even on a busy core. A forked kernel costs ~0.1 s of CPU; a step that finds none waits for a whole
        start (two branches after a short step, a join after two branches of equal length)."""
        self._ahead = max(0, count)
        self._fill()

    def _fill(self) -> None:
        if self._closed:
            return
        while (coming := len(self._starting) + self._ready.qsize()) < min(self.size, self._wanted):
            # busy: kernels starting, steps running, and waiting kernels a waiting step is about to take
            busy = len(self._starting) + len(self._handed_out) + min(self._ready.qsize(), self._waiters)
            core_idle = busy < self.cores
            if not core_idle and self._waiters + self._ahead <= coming:
                break
            task = asyncio.ensure_future(self._start_one())
            self._starting.add(task)
            task.add_done_callback(self._started)
        self._hold_refills(bool(self._starting))

    def _hold_refills(self, hold: bool) -> None:
        """While this run's kernels start and warm up, the shared pool's refills wait: on few cores they took
        the CPU the run's next kernel needed (a branch started 0.4-0.5 s after its sibling)."""
        if self.shared is not None and hold != self._holding:
            self._holding = hold
            self.shared.hold_refills(hold)

    def _started(self, task: asyncio.Task) -> None:
        self._starting.discard(task)
        self._hold_refills(bool(self._starting))
        if task.cancelled():
            return
        if task.exception() is not None:
            self._failures.append(task.exception())
        else:
            self._ready.put_nowait(task.result())
        self._changed.set()  # a waiting step takes it now
        self._fill()  # its core is free again

    async def _start_one(self) -> Kernel:
        """A kernel for this run: one of the shared pool's waiting kernels when it has one (claimed when
        needed or ahead, and warmed up for this run's prelude at once, not when its step begins), else a
        new one. The first kernel of a run is forked too, once the fork server is up: spawning it beside the
        server's start paid ipykernel's imports twice on the critical path's cores."""
        shared = await self.shared.take(self.kernel_name, self.cwd, self.modules) if self.shared else None
        if shared is not None:
            try:
                await warm_up(shared.client, self.warmup)
            except BaseException:  # cancelled (the run ended): it is ours to stop
                await shared.shutdown()
                raise
            return shared
        return await start_kernel(
            self.kernel_name, self.cwd, warmup=self.warmup, log=self.log, forker=self.forker
        )

    async def acquire(self) -> Kernel:
        """A started kernel with a connected, ready client; the caller owns it (and shuts it down)."""
        if self._wanted <= 0:
            self._wanted = 1
        self._waiters += 1
        try:
            kernel = await self._take()
        finally:
            self._waiters -= 1
        self._wanted -= 1
        self._handed_out.add(kernel)
        self._fill()
        return kernel

    async def _take(self) -> Kernel:
        self._fill()
        while self._ready.empty():
            if self._failures:  # a start failed: tell this caller instead of retrying for ever
                raise self._failures.pop(0)
            if not self._starting:
                self._fill()
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.1)
        return self._ready.get_nowait()

    def release(self, kernel: Kernel) -> None:
        """Stop a kernel the caller is done with, in the background (a step need not wait for it)."""
        self._handed_out.discard(kernel)
        task = asyncio.ensure_future(kernel.shutdown())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
        self._fill()  # its step's core is free for the next kernel

    async def close(self) -> None:
        """Stop kernels still warming up or waiting, and any handed-out kernel still alive."""
        self._closed = True
        for task in list(self._starting):
            task.cancel()
        for task in list(self._starting):
            with contextlib.suppress(BaseException):
                await task
        self._hold_refills(False)
        kernels = list(self._handed_out)
        while not self._ready.empty():
            kernels.append(self._ready.get_nowait())
        await asyncio.gather(*(k.shutdown() for k in kernels), *self._stopping, return_exceptions=True)
        if self._own_forker:
            await asyncio.to_thread(self.forker.close)
        elif self.shared is not None and not self._ended:
            self._ended = True
            self.shared.end_run()


def kernel_pid(kernel: Kernel) -> int | None:
    """The pid of a kernel that leads a session of its own (forked and spawned kernels do), else None."""
    try:
        pid = kernel.km.provisioner.process.pid
        return pid if os.getsid(pid) == pid else None
    except (AttributeError, OSError):
        return None


def leading_imports(sources: list[str]) -> str:
    """The import statements the prelude begins with, as code: those before its first statement of any
    other kind (an assignment, a call, a magic), across its cells in order.

    A kernel runs them before its step (at start, or when a run claims it), which leaves it exactly as the
    prelude's own first lines would. An import that comes after ``os.environ[...] = ...``, a
    ``sys.path`` change or ``%env`` must see that change (numpy fixes its thread count when imported), so it
    is left to the prelude, as is everything after it."""
    import ast

    from jupyter_ext.notebook.source import to_python

    lines = []
    for source in sources:
        try:
            tree = ast.parse(to_python(source))
        except SyntaxError:
            break
        for node in tree.body:
            if not isinstance(node, ast.Import | ast.ImportFrom):
                return "\n".join(lines)
            lines.append(ast.unparse(node))
    return "\n".join(lines)


def _preload_call(function: str, *args: object) -> str:
    """Code that calls ``function`` of :mod:`jupyter_ext.runtime.preload` in a kernel with literal ``args``,
    binding no name in the user's namespace."""
    arguments = ", ".join(repr(arg) for arg in args)
    return f"__import__('jupyter_ext.runtime.preload', fromlist=['_']).{function}({arguments})"


def imported_modules(statements: str) -> list[str]:
    """The absolute module names some import statements (:func:`leading_imports`'s code) load, in order."""
    import ast

    names: list[str] = []
    for node in ast.parse(statements).body:
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return list(dict.fromkeys(names))


class WarmKernelPool:
    """Kernels started ahead of any run, for a long-lived process (the Jupyter server): a run's first step
    need not wait a second or more for its kernel.

    ``size`` kernels of ``kernel_name`` wait, started in ``cwd``, from the first :meth:`wake` (a notebook
    opened for analysis, a run) on. :meth:`take` hands one out and starts a replacement in the background. A
    kernel is handed out once and never comes back (the taker shuts it down), so every step still runs in a
    fresh kernel, exactly as without the pool. New kernels import the installed modules of the latest
    notebook's leading imports (:meth:`preload`), with the user's namespace untouched.

    ``idle_timeout`` seconds after the last wake with no run in progress (0: never), the pool gives its
    waiting kernels and its fork server back, so a server nobody uses holds no kernels; the next wake
    starts them again.
    """

    def __init__(
        self, size: int, *, cwd: str | Path, kernel_name: str = "python3", log: str | Path | None = None,
        preload: bool = True, idle_timeout: float = 0.0,
    ) -> None:  # fmt: skip
        self.size = max(0, int(size))
        self.idle_timeout = max(0.0, float(idle_timeout))
        self.preloading = preload  # False: waiting kernels import nothing ahead (:meth:`preload` is ignored)
        self.kernel_name = kernel_name
        self.cwd = str(cwd)
        self.log = Path(log) if log else None
        self.handed_out = 0  # kernels taken so far (for tests and the server's log)
        self.forker = KernelForkServer(log=self.log)  # runs' own kernels fork from it too
        self._ready: list[tuple[Kernel, tuple[str, ...]]] = []  # and the modules each imported ahead
        self._starting: set[asyncio.Task] = set()
        self._closed = False
        self._failures = 0
        self._preload: tuple[str, ...] = ()  # modules new kernels import while they wait (runtime/preload.py)
        self._local: list[str] = []  # directories of the user's project: nothing there is imported ahead
        self._holds = 0  # runs whose kernels are starting: refills wait for them (KernelPool)
        self._awake = False  # kernels are kept (from the first wake until given back when idle)
        self._runs = 0  # runs using the pool's fork server now: never given back under them
        self._last_used = 0.0  # event-loop time of the latest wake or run end
        self._idle_watch: asyncio.Task | None = None
        self.given_back = 0  # times the pool gave its kernels back when idle (for tests and the log)
        self._yielding: set[int] = set()  # pids of kernels importing ahead at idle CPU priority
        self._takers = 0  # runs waiting in take() for a kernel still starting (it must not yield the CPU)

    def start(self) -> None:
        """Begin filling the pool now (call on the event loop that will use it); the same as :meth:`wake`."""
        self.wake()

    def wake(self) -> None:
        """Someone is about to run a notebook (it was opened, or a run begins): keep ``size`` kernels waiting
        from now on, and count the idle time from now."""
        if self._closed:
            return
        self._awake = True
        self._last_used = asyncio.get_running_loop().time()
        if self.idle_timeout > 0 and self._idle_watch is None:
            self._idle_watch = asyncio.ensure_future(self._give_back_when_idle())
        self._fill()

    def begin_run(self) -> None:
        """A run's kernels are about to come from this pool and its fork server (KernelPool): wake up, and
        give nothing back until :meth:`end_run`."""
        self._runs += 1
        self.wake()

    def end_run(self) -> None:
        self._runs = max(0, self._runs - 1)
        if not self._runs:
            self._stop_yielding()
        if not self._closed:
            self._last_used = asyncio.get_running_loop().time()  # idle from the run's end

    async def _give_back_when_idle(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self._closed:
                due = self._last_used + self.idle_timeout
                if loop.time() >= due and not self._runs:
                    await self._give_back()
                    if not self._awake:  # else woken while giving back: watch that use too
                        return
                    continue
                await asyncio.sleep(max(due - loop.time(), min(self.idle_timeout, 1.0)))
        finally:
            self._idle_watch = None

    async def _give_back(self) -> None:
        """Stop the waiting kernels and the fork server. Nothing else uses them: no run is in progress (a
        run's kernels fork from the server, and die with it). A later wake forks from a new fork server,
        in place before the first await, so a wake meanwhile never gets a kernel of the old one."""
        self._awake = False
        self.given_back += 1
        forker, self.forker = self.forker, KernelForkServer(log=self.log)
        await self._stop_kernels(forker)

    async def _stop_kernels(self, forker: KernelForkServer) -> None:
        """Stop the kernels starting and waiting (detached from the pool before the first await), then
        ``forker``, the fork server they came from."""
        starting, self._starting = set(self._starting), set()
        kernels, self._ready = self.waiting, []
        for task in starting:
            task.cancel()
        await asyncio.gather(*starting, return_exceptions=True)
        await asyncio.gather(*(k.shutdown() for k in kernels), return_exceptions=True)
        await asyncio.to_thread(forker.close)

    @property
    def ready(self) -> int:
        return len(self._ready)

    @property
    def waiting(self) -> list[Kernel]:
        """The kernels ready to be taken, next first."""
        return [kernel for kernel, _ in self._ready]

    def preload(self, modules: list[str], *, local: list[str]) -> None:
        """Kernels started from now on import ``modules`` (those installed outside the server's root and
        ``local``) while they wait: a run of the same notebook finds them loaded. The user's project modules
        are never imported ahead (the run must execute its snapshot's code), nor is a name bound."""
        self._preload = tuple(modules) if self.preloading else ()
        self._local = [self.cwd, *local]

    def hold_refills(self, hold: bool) -> None:
        """A run's kernels begin (True) or end (False) starting; refills start only when none do."""
        self._holds = max(0, self._holds + (1 if hold else -1))
        self._fill()

    def _fill(self) -> None:
        # asleep, closed, failing (runs start their own kernels) or a run's kernels are starting
        if not self._awake or self._closed or self._failures >= 3 or self._holds:
            return
        while len(self._ready) + len(self._starting) < self.size:
            task = asyncio.ensure_future(self._start_one(self._preload))
            self._starting.add(task)
            task.add_done_callback(self._started)

    async def _start_one(self, modules: tuple[str, ...]) -> tuple[Kernel, tuple[str, ...]]:
        kernel = await start_kernel(self.kernel_name, self.cwd, log=self.log, forker=self.forker)
        if modules:
            try:
                await self._preload_into(kernel, modules)
            except BaseException:  # cancelled (given back, closed): a kernel nobody will take
                await kernel.shutdown()
                raise
        return kernel, modules

    async def _preload_into(self, kernel: Kernel, modules: tuple[str, ...]) -> None:
        """Import ``modules`` into a waiting kernel (:mod:`jupyter_ext.runtime.preload`). While a run of this
        process is in progress, at idle CPU priority: the kernel's session's scheduling group goes to
        autogroup nice 19, so the import (numpy ~0.1 s of CPU, pandas and scikit-learn seconds) takes only
        CPU time the run's steps do not want, instead of a core's share from them. Back to 0 when done, when
        the runs end (so that other users' work cannot starve it), or when a run waits for it (:meth:`take`)."""
        code = _preload_call("import_installed", list(modules), self._local)
        pid = kernel_pid(kernel)
        if pid is not None and self._runs and not self._takers:  # nobody waits for this kernel now
            self._yielding.add(pid)
            set_autogroup_nice(pid, IDLE_AUTOGROUP_NICE)
        try:
            await warm_up(kernel.client, code)
        finally:
            if pid in self._yielding:
                self._yielding.discard(pid)
                set_autogroup_nice(pid, 0)

    def _stop_yielding(self) -> None:
        """Kernels importing at idle priority get a core's share again (a run waits for one, or none runs)."""
        for pid in self._yielding:
            set_autogroup_nice(pid, 0)
        self._yielding.clear()

    def _started(self, task: asyncio.Task) -> None:
        ours = task in self._starting  # not when given back while it started (a kernel of the old forker)
        self._starting.discard(task)
        if task.cancelled():
            return
        if task.exception() is not None:
            self._failures += 1
        elif self._closed or not ours:
            asyncio.ensure_future(task.result()[0].shutdown())
            return
        else:
            self._failures = 0
            self._ready.append(task.result())
        self._fill()

    async def take(
        self, kernel_name: str, cwd: str | Path, modules: list[str] | None = None
    ) -> Kernel | None:
        """A started, ready kernel of ``kernel_name`` working in ``cwd``, or None when none is waiting or on
        its way. ``modules``: the run's leading imports (:func:`imported_modules`). A kernel that imported
        modules ahead serves the run only if they begin its own, in their order; otherwise it could hold a
        module this run's prelude imports only after changing the environment, or not at all. Such a
        kernel is stopped, as is one that died while waiting."""
        if kernel_name != self.kernel_name:
            return None
        if not self._ready and self._starting and not self._closed:
            # One on its way is ready sooner than a new one: both fork from the same server, and a new start
            # would compete with it for the cores. Only the starts under way now are waited for (once), so a
            # busy server cannot keep a run waiting on refills that other runs take. Meanwhile none of them
            # imports at idle priority: this run waits for it.
            self._takers += 1
            self._stop_yielding()
            try:
                await asyncio.wait(set(self._starting), return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._takers -= 1
        while self._ready and not self._closed:
            kernel, imported_ahead = self._ready.pop(0)
            self._fill()
            if list(imported_ahead) != list(modules or [])[: len(imported_ahead)]:
                await kernel.shutdown()  # it imported another notebook's modules: not fresh for this one
                continue
            if imported_ahead:
                # into the run's directory, refused where a module it imported ahead is shadowed by one of
                # the project's (the step must import the project's own): a new kernel serves instead
                code = _preload_call("enter", str(cwd))
            elif str(cwd) != self.cwd:  # started before the run's directory was known
                code = f"import os as _cellpipe_os; _cellpipe_os.chdir({str(cwd)!r}); del _cellpipe_os"
            else:
                code = ""
            try:
                if code:
                    reply = await kernel.client.execute_interactive(
                        code, silent=True, store_history=False, timeout=30
                    )
                    if reply["content"]["status"] != "ok":
                        raise RuntimeError(f"cannot work in {cwd}")
            except Exception:  # died while waiting, or cannot work there: never hand it out
                await kernel.shutdown()
                continue
            self.handed_out += 1
            return kernel
        return None

    async def close(self) -> None:
        self._closed = True
        if self._idle_watch is not None:
            self._idle_watch.cancel()
        await self._stop_kernels(self.forker)
