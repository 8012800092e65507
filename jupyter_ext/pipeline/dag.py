"""Graph helpers over step dependencies: cycle detection and a stable topological order."""

from __future__ import annotations

import heapq


def find_cycle(depends_on: dict[str, list[str]]) -> list[str] | None:
    """Return a cycle as a list of step names (first == last), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for upstream in depends_on.get(node, []):
            if state.get(upstream) == 1:
                start = path.index(upstream)
                return [*path[start:], upstream]
            if upstream not in state and (cycle := visit(upstream)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in depends_on:
        if node not in state and (cycle := visit(node)):
            # read it in execution order: a -> b means b runs after a
            return list(reversed(cycle))
    return None


def topological_order(depends_on: dict[str, list[str]], position: dict[str, int]) -> list[str]:
    """Kahn's algorithm; among ready steps the one earliest in the notebook goes first."""
    remaining = {name: len(set(ups)) for name, ups in depends_on.items()}
    dependants: dict[str, list[str]] = {name: [] for name in depends_on}
    for name, ups in depends_on.items():
        for upstream in set(ups):
            dependants[upstream].append(name)
    ready = [(position[n], n) for n, count in remaining.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for dependant in dependants[name]:
            remaining[dependant] -= 1
            if remaining[dependant] == 0:
                heapq.heappush(ready, (position[dependant], dependant))
    return order


def levels(depends_on: dict[str, list[str]], order: list[str]) -> dict[str, int]:
    """Depth of each step (0 = no upstream); steps on the same level can run in parallel."""
    depth: dict[str, int] = {}
    for name in order:
        depth[name] = 1 + max((depth[u] for u in depends_on.get(name, [])), default=-1)
    return depth
