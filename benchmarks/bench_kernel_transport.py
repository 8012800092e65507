"""Local kernels on IPC (Unix sockets in a private directory, the default) against loopback TCP (the
fallback where IPC is impossible), measured in the same run.

    python benchmarks/bench_kernel_transport.py [--kernels 4] [--messages 200] [--repeat 3]

Each batch starts ``--kernels`` kernels one after the other the way a run does (forked from a fork server
of its own, started first and untimed; with ``--spawned`` each a new process, as in a pod: IPC kernels
then start through cellpipe's kernel_launcher.py, TCP ones through ``-m ipykernel_launcher``), sends each ``--messages`` small requests in turn (an execute of
``pass``: one round trip on shell plus IOPub's busy/idle), and stops them. Batches of the two transports
alternate, so both see the same load. Printed per transport: median wall and CPU seconds (this process,
this process) of the start (per kernel), of the round trips (per request, in ms) and of the stop (per
batch), the CPU seconds of the fork server and its kernels per batch (rusage of the reaped children:
counted when the batch ends), and IPC's ratios against TCP.
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import tempfile
import time

import common  # puts this checkout first on sys.path

from jupyter_ext.runtime import kernel as kernel_module
from jupyter_ext.runtime.kernel_fork import KernelForkServer

PHASES = ("start", "messages", "stop")
KERNELS = "kernels"  # the fork server and its kernels, over the whole batch


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def batch(cwd: str, kernels: int, messages: int, spawned: bool) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds of each phase in this process, and of the kernels over the batch."""
    forker = None if spawned else KernelForkServer()
    children = cpu_seconds(resource.RUSAGE_CHILDREN)
    started_at = time.perf_counter()
    if forker is not None:
        await asyncio.to_thread(forker.start)
    marks = [(time.perf_counter(), cpu_seconds(resource.RUSAGE_SELF))]
    started = [await kernel_module.start_kernel("python3", cwd, forker=forker) for _ in range(kernels)]
    marks.append((time.perf_counter(), cpu_seconds(resource.RUSAGE_SELF)))
    for kernel in started:
        for _ in range(messages):
            await kernel.client.execute_interactive("pass", store_history=False, timeout=60)
    marks.append((time.perf_counter(), cpu_seconds(resource.RUSAGE_SELF)))
    for kernel in started:
        await kernel.shutdown()
    if forker is not None:
        await asyncio.to_thread(forker.close)  # reaps the server, whose rusage includes its reaped kernels
    marks.append((time.perf_counter(), cpu_seconds(resource.RUSAGE_SELF)))
    phases = {
        phase: (after[0] - before[0], after[1] - before[1])
        for phase, before, after in zip(PHASES, marks[:-1], marks[1:], strict=True)
    }
    return {
        **phases,
        KERNELS: (time.perf_counter() - started_at, cpu_seconds(resource.RUSAGE_CHILDREN) - children),
    }


def main() -> None:
    parser = common.arguments(__doc__)
    parser.add_argument("--kernels", type=int, default=4, help="kernels per batch (default 4)")
    parser.add_argument("--messages", type=int, default=200, help="requests per kernel (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="batches per transport (default 3)")
    parser.add_argument(
        "--spawned", action="store_true", help="spawn every kernel (as a pod does), no fork server"
    )
    args = parser.parse_args()
    ipc_socket_dir = kernel_module.new_socket_dir
    results: dict[str, list[dict[str, tuple[float, float]]]] = {"tcp": [], "ipc": []}
    with tempfile.TemporaryDirectory() as cwd:
        asyncio.run(batch(cwd, 1, 1, args.spawned))  # imports and page cache out of the timing
        for _ in range(args.repeat):
            for name in results:
                kernel_module.new_socket_dir = ipc_socket_dir if name == "ipc" else lambda: None
                results[name].append(asyncio.run(batch(cwd, args.kernels, args.messages, args.spawned)))
    kernel_module.new_socket_dir = ipc_socket_dir

    def median(name: str, phase: str, index: int) -> float:
        return statistics.median(result[phase][index] for result in results[name])

    scale = {
        "start": 1 / args.kernels,
        "messages": 1000 / (args.kernels * args.messages),
        "stop": 1,
        KERNELS: 1,
    }
    unit = {
        "start": "s per kernel",
        "messages": "ms per request",
        "stop": "s per batch",
        KERNELS: "s per batch",
    }
    print(f"{args.kernels} {'spawned' if args.spawned else 'forked'} kernels per batch, {args.messages} requests each, {args.repeat} batches "
          f"per transport, {os.cpu_count()} cores")  # fmt: skip
    print(
        f"{'phase':<9} {'unit':<15} {'TCP wall':>9} {'IPC wall':>9} {'ratio':>6} {'TCP CPU':>8} {'IPC CPU':>8} {'ratio':>6}"
    )
    for phase in (*PHASES, KERNELS):
        tcp_wall, ipc_wall = (median(n, phase, 0) * scale[phase] for n in ("tcp", "ipc"))
        tcp_cpu, ipc_cpu = (median(n, phase, 1) * scale[phase] for n in ("tcp", "ipc"))
        print(f"{phase:<9} {unit[phase]:<15} {tcp_wall:9.3f} {ipc_wall:9.3f} {ipc_wall / tcp_wall:6.2f} "
              f"{tcp_cpu:8.3f} {ipc_cpu:8.3f} {ipc_cpu / tcp_cpu if tcp_cpu else float('nan'):6.2f}")  # fmt: skip
    print(common.load_average())


if __name__ == "__main__":
    main()
