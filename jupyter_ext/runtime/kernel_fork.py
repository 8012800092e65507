"""Start Python kernels by forking a process that has imported ipykernel already.

A new ``python -m ipykernel_launcher`` spends about half a second of CPU before it answers: the interpreter's
start-up and ipykernel's imports (zmq, tornado, IPython, jupyter_client). On two cores that second is taken
from the steps that are running. A fork server (a "zygote", as Android and multiprocessing's forkserver
do it) pays those imports once per run (or once per Jupyter server) and forks a child per kernel; the child
then does only what is particular to its kernel (connection file, sockets, threads, the shell).

Every kernel is still a fresh process that has run no user code: the server imports modules and nothing
else, never creates a thread, socket or event loop before it forks, and every child execs nothing of its
siblings'. What differs from a spawned kernel: Python's hash seed is shared by the children of one server
(``random`` is re-seeded in each child by Python itself).

Only the native kernel qualifies: a kernel spec whose command is this interpreter with ``-m
ipykernel_launcher``. Anything else (another Python, R, a spec with its own launcher) starts as usual.

Protocol, over a Unix socket pair: the client sends one JSON request per kernel (argv, cwd, environment),
with the descriptor for the kernel's stdout and stderr passed along (SCM_RIGHTS); the server answers
``{"pid": N}``. The server exits when the client's end closes, and its kernels follow it (ipykernel's parent
poller watches the server's pid).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from jupyter_ext.util import end_with_parent

LAUNCHER = ["-m", "ipykernel_launcher"]
READY = b"ready\n"
MAX_MESSAGE = 1 << 20
# ipykernel and what IPKernelApp.initialize imports (found by comparing sys.modules of a started kernel)
PRELOAD = [
    "ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.debugger", "debugpy", "IPython.core.debugger",
    "IPython.core.completerlib", "IPython.core.oinspect", "IPython.core.logger", "IPython.extensions.storemagic",
    "sqlite3", "pdb", "psutil", "setproctitle",
    # what a step's inputs and outputs cells import: off the step's critical path
    "jupyter_ext.runtime.marshal", "jupyter_ext.runtime.metrics", "jupyter_ext.runtime.preload",
    "ctypes",  # the parent-death signal each forked kernel sets
]  # fmt: skip


def native(cmd: list[str]) -> bool:
    """Whether a kernel command is this interpreter's own ipykernel."""
    if len(cmd) < 3 or cmd[1:3] != LAUNCHER:
        return False
    with contextlib.suppress(OSError):
        return os.path.samefile(cmd[0], sys.executable)
    return False


def forkable(cmd: list[str]) -> bool:
    """Whether a fork server can start a kernel command: this interpreter's own ipykernel, on a system that
    can follow a process it did not start (Linux 5.3+: pidfds; elsewhere kernels are spawned)."""
    return hasattr(os, "pidfd_open") and native(cmd)


class KernelForkServer:
    """The client side: starts the server process, asks it for kernels; thread-safe, blocking calls
    (an event loop calls :meth:`fork` through ``asyncio.to_thread``)."""

    def __init__(self, *, log: str | Path | None = None) -> None:
        self.log = Path(log) if log else None
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._process: subprocess.Popen | None = None
        self._broken = False

    @property
    def usable(self) -> bool:
        return not self._broken

    @property
    def running(self) -> bool:
        return self._socket is not None

    def start(self) -> None:
        """Start the server process now (otherwise the first :meth:`fork` does); errors make it unusable."""
        with self._lock:
            if self._socket is None and not self._broken:
                try:
                    self._socket = self._start()
                except OSError:
                    self._broken = True
                    self._close()

    def _start(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with open(self.log, "ab") if self.log else open(os.devnull, "wb") as output:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno())],
                stdin=subprocess.DEVNULL, stdout=output, stderr=output, pass_fds=[theirs.fileno()],
                start_new_session=True,  # Ctrl-C in the terminal goes to the runner, which stops the kernels
            )  # fmt: skip
        theirs.close()
        if _read_line(ours) != READY:  # it could not import ipykernel, or found a thread running
            ours.close()
            raise OSError("the kernel fork server did not start")
        return ours

    def fork(self, argv: list[str], *, cwd: str, env: dict[str, str], output: int | None) -> int:
        """A new kernel process running ``ipykernel_launcher argv`` in ``cwd`` with ``env``, its stdout and
        stderr on the descriptor ``output`` (None: /dev/null); returns its pid."""
        with self._lock:
            if self._broken:
                raise OSError("the kernel fork server is not running")
            try:
                if self._socket is None:
                    self._socket = self._start()
                request = json.dumps({"argv": argv, "cwd": cwd, "env": env}).encode() + b"\n"
                socket.send_fds(self._socket, [request], [output] if output is not None else [])
                return int(json.loads(_read_line(self._socket))["pid"])
            except (OSError, ValueError, KeyError) as exc:
                self._broken = True  # callers start their kernels the usual way from now on
                self._close()
                raise OSError(f"the kernel fork server failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._socket is not None:
            self._socket.close()  # the server sees the end of its input and exits
            self._socket = None
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


class ForkedProcess:
    """A ``Popen``-like handle on a kernel forked by the server (not our child: a pidfd tells its exit, and
    signals go through it, so a reused pid is never signalled)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = os.pidfd_open(pid)

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._pidfd], [], [], 0)[0]:
            self._exited()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._pidfd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            self._exited()
        assert self.returncode is not None
        return self.returncode

    def _exited(self) -> None:
        self.returncode = -1  # the server reaps it: its exit status is not ours to read
        os.close(self._pidfd)

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            signal.pidfd_send_signal(self._pidfd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def fileno(self) -> int:
        """The pidfd: readable once the process has exited."""
        return self._pidfd


def _read_line(channel: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = channel.recv(4096)
        if not chunk or len(data) > MAX_MESSAGE:
            raise OSError("the kernel fork server closed the connection")
        data += chunk
    return data


# -- the server process -------------------------------------------------------------------------------
def serve(channel: socket.socket) -> None:
    """Import ipykernel, then fork a kernel per request until the client closes the channel."""
    import importlib

    for module in PRELOAD:  # what every kernel imports: paid once, here
        with contextlib.suppress(ImportError):
            importlib.import_module(module)

    if threading.active_count() != 1:  # forking a process with threads is unsafe: refuse, clients fall back
        return
    signal.signal(
        signal.SIGCHLD, _reap
    )  # waited for, so that their CPU time counts in this process's children
    channel.sendall(READY)
    while True:
        message, fds, _flags, _address = socket.recv_fds(channel, MAX_MESSAGE, 1)
        if not message:
            return
        while not message.endswith(b"\n"):
            more = channel.recv(MAX_MESSAGE)
            if not more:
                return
            message += more
        server = os.getpid()
        pid = os.fork()
        if pid == 0:
            channel.close()
            # killed when the fork server ends (it has one thread, the one that forked): a child that
            # looked up its parent after the server died would see init, and its poller would never stop it
            end_with_parent(server, signal.SIGKILL)
            _run_kernel(json.loads(message), fds[0] if fds else None, server)  # never returns
        for fd in fds:
            os.close(fd)
        channel.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def _reap(_signum: int, _frame: Any) -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _run_kernel(request: dict[str, Any], output: int | None, server: int) -> None:
    """In the forked child: become the kernel ``python -m ipykernel_launcher ARGV`` would have been."""
    code = 1
    try:
        # the kernel exits with the server: ipykernel's parent poller, beside the parent-death signal on Linux
        argv = [*request["argv"], f"--IPKernelApp.parent_handle={server}"]
        with contextlib.suppress(ImportError):  # `ps` and process tools see a kernel, not the fork server
            import setproctitle  # (first: it finds the command line's memory through the untouched environ)

            setproctitle.setproctitle(" ".join([sys.executable, "-m", "ipykernel_launcher", *argv]))
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the kernel's own subprocesses are waited for
        os.setsid()  # its own process group, as jupyter_client starts kernels: interrupts reach it alone
        if output is None:
            output = os.open(os.devnull, os.O_WRONLY)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.close(stdin)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        import ipykernel_launcher
        from ipykernel import kernelapp

        from jupyter_ext.runtime.kernel_launcher import private_subprocess_pipe

        private_subprocess_pipe()
        sys.argv = [ipykernel_launcher.__file__, *argv]
        kernelapp.launch_new_instance(argv=argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    if sys.path[0] == "" or Path(sys.path[0]) == Path.cwd():  # as ipykernel_launcher does before its imports
        del sys.path[0]
    serve(socket.socket(fileno=int(sys.argv[1])))
    os._exit(0)  # nothing to clean up: tearing down the imported modules would cost the run a few 0.1 s
