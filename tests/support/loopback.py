"""Loopback ports for the tests' servers, and for hosts that must not answer."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port nothing listens on now: bound to port 0, then released. A server started on it may
    lose it to another process in between (rare); a client sent to it gets "connection refused"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
