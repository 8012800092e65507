"""Kernel-side: import installed modules into a waiting kernel, leaving its namespace untouched.

The Jupyter server keeps kernels started ahead of any run (``targets/local/kernels.py: WarmKernelPool``).
A run's first step would otherwise begin by importing the notebook's modules (numpy: ~0.1 s of CPU, more
while other kernels start beside it). A waiting kernel imports the modules the server's latest run
imported, so that the prelude's ``import`` statements find them loaded. Only ``sys.modules`` changes: no
name is bound in the user's namespace, no cell is executed, so the kernel is as fresh for its step as one
whose fork server preloaded ipykernel. Modules of the user's project (found under one of ``local``
directories, or not found at all) are never imported ahead: they may be edited before the run, and the run
must execute the code of its snapshot.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os

IMPORTED: list[str] = []  # what this kernel imported ahead


def import_installed(names: list[str], local: list[str]) -> list[str]:
    """Import the modules of ``names``, in order, up to the first one that is not installed outside every
    directory of ``local`` or cannot be imported here; returns the names imported. Stopping there (not
    skipping) keeps the order the prelude imports them in: a project module may change what the next
    import finds. The rest is left to the step's prelude."""
    roots = [os.path.realpath(path) + os.sep for path in local]
    imported = []
    for name in names:
        try:
            spec = importlib.util.find_spec(name.partition(".")[0])
            if spec is None or not _installed_outside(spec, roots):
                break
            importlib.import_module(name)
        except Exception:
            break
        imported.append(name)
    IMPORTED.extend(imported)
    return imported


def enter(directory: str) -> None:
    """Move a waiting kernel into a run's ``directory``. Refused (ImportError) where a module it imported
    ahead is shadowed there by one of the project's (``utils.py`` beside the notebook, an installed
    ``utils`` imported ahead): the step's ``import`` must find the project's own, so the kernel is not used."""
    os.chdir(directory)
    for name in IMPORTED:
        top = name.partition(".")[0]
        if importlib.machinery.PathFinder.find_spec(top, [directory]) is not None:
            raise ImportError(f"{top}, imported ahead, is shadowed by the project's own in {directory}")


def _installed_outside(spec: object, roots: list[str]) -> bool:
    origin = getattr(spec, "origin", None)
    places = [origin] if origin and os.path.isabs(origin) else []
    places.extend(getattr(spec, "submodule_search_locations", None) or [])
    if not places:  # built in or frozen: part of the interpreter
        return origin in ("built-in", "frozen")
    return not any(os.path.realpath(place).startswith(tuple(roots)) for place in places)
