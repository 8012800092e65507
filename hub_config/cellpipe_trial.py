"""Helpers of the one-machine trial hub (trial_config.py), importable by its tests too."""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"
PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def quiet_port(low: int = 20000) -> int:
    """A free loopback port below the kernel's ephemeral range, or 0 if none is found.

    Kernels, clients and "bind to port 0" all get ephemeral ports. A user server's port is chosen seconds
    before the server binds it (it binds once its imports are done); a port outside the ephemeral range
    cannot be handed to some kernel meanwhile, as happened on a busy machine.
    """
    try:
        high = int(PORT_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        high = 32768
    for port in random.sample(range(low, max(high, low + 1)), k=min(200, max(high - low, 1))):
        with socket.socket() as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    return 0
