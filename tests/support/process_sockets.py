"""What sockets a process holds, read from /proc (no psutil: the same function runs inside a kernel)."""

from __future__ import annotations


def process_sockets(pid: int) -> dict:
    """The TCP sockets (``tcp``: "state address:port", hex as /proc writes them; state 0A is LISTEN) and the
    bound Unix socket paths (``unix``) among the open descriptors of process ``pid``."""
    import os

    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    tcp = []
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as lines:
            for line in list(lines)[1:]:
                fields = line.split()  # sl local_address rem_address st ... uid timeout inode
                if fields[9] in inodes:
                    tcp.append(f"{fields[3]} {fields[1]}")
    unix = []
    with open(f"/proc/{pid}/net/unix") as lines:
        for line in list(lines)[1:]:
            fields = line.split()  # Num RefCount Protocol Flags Type St Inode [Path]
            if fields[6] in inodes and len(fields) > 7:
                unix.append(fields[7])
    return {"tcp": tcp, "unix": unix}
