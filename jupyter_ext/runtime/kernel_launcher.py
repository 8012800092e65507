"""``python .../kernel_launcher.py -f CONNECTION_FILE``: ipykernel's launcher, with no TCP socket at all.

A kernel on the IPC transport (:mod:`.transport`) still listens on one loopback TCP port: ipykernel's pipe
for the output of the kernel's forked subprocesses (``multiprocessing``, ``os.fork``) is a PULL socket on a
random ``tcp://127.0.0.1`` port whatever the kernel's transport. Here that pipe becomes an IPC socket
beside the kernel's own, in its private directory. Kernels on TCP keep ipykernel's pipe.

Started by path, not with ``-m``: it needs nothing of cellpipe on the kernel's ``sys.path``. The fork
server's kernels (:mod:`.kernel_fork`) call :func:`private_subprocess_pipe` themselves.
"""

from __future__ import annotations

import os
import sys
from typing import Any

PIPE_SUFFIX = "-pipe"  # the pipe's socket is "<ip>-pipe", beside the channels' "<ip>-1" ... "<ip>-5"


def private_subprocess_pipe() -> None:
    """Make ipykernel put its subprocess-output pipe on IPC when the kernel's own transport is IPC."""
    import zmq
    from ipykernel.iostream import IOPubThread
    from ipykernel.kernelapp import IPKernelApp
    from zmq.eventloop.zmqstream import ZMQStream

    if getattr(IOPubThread, "_cellpipe_private_pipe", False):
        return
    tcp_pipe_in, tcp_pipe_out = IOPubThread._setup_pipe_in, IOPubThread._setup_pipe_out

    def setup_pipe_in(self: Any) -> None:  # ipykernel's, on an IPC address
        app = IPKernelApp.instance() if IPKernelApp.initialized() else None  # its connection file is read
        if app is None or app.transport != "ipc":
            return tcp_pipe_in(self)
        address = f"ipc://{app.ip}{PIPE_SUFFIX}"
        self._pipe_uuid = os.urandom(16)  # what authenticates a subprocess's messages, as in ipykernel
        pipe_in = self.socket.context.socket(zmq.PULL)
        pipe_in.linger = 0
        try:
            pipe_in.bind(address)
        except zmq.ZMQError:
            pipe_in.close()
            return tcp_pipe_in(self)
        self._cellpipe_pipe_address = address
        self._pipe_in = ZMQStream(pipe_in, self.io_loop)
        self._pipe_in.on_recv(self._handle_pipe_msg)

    def setup_pipe_out(self: Any) -> tuple:  # in the forked subprocess: connects to the address above
        address = getattr(self, "_cellpipe_pipe_address", None)
        if address is None:
            return tcp_pipe_out(self)
        context = zmq.Context()  # a new one after the fork, as ipykernel does
        pipe_out = context.socket(zmq.PUSH)
        pipe_out.linger = 3000
        pipe_out.connect(address)
        return context, pipe_out

    IOPubThread._setup_pipe_in = setup_pipe_in
    IOPubThread._setup_pipe_out = setup_pipe_out
    IOPubThread._cellpipe_private_pipe = True


def launcher_command(kernel_cmd: list[str]) -> list[str]:
    """``[python, -m, ipykernel_launcher, ARGS...]`` as ``[python, <this file>, ARGS...]``."""
    return [kernel_cmd[0], os.path.abspath(__file__), *kernel_cmd[3:]]


if __name__ == "__main__":
    del sys.path[0]  # this file's directory: its modules must not shadow the user's (ipykernel adds the cwd)
    private_subprocess_pipe()
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
