"""The project a notebook belongs to (its git repository, else its directory) and that repository's state.

git is optional: without the binary, or outside a repository, the helpers return None.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

GIT_TIMEOUT_S = 10


def run_git(args: list[str], cwd: Path) -> str | None:
    """stdout of ``git ARGS`` in ``cwd``, or None when git is missing or the command fails."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_toplevel(directory: Path) -> Path | None:
    top = run_git(["rev-parse", "--show-toplevel"], directory)
    return Path(top).resolve() if top else None


def find_project_root(notebook_path: str | Path) -> Path:
    """The notebook's git repository root, else the notebook's own directory (both resolved)."""
    return project_root_of(Path(notebook_path).expanduser().resolve().parent)


def project_root_of(directory: str | Path) -> Path:
    """The git repository root containing ``directory``, else ``directory`` itself (resolved)."""
    resolved = Path(directory).expanduser().resolve()
    return git_toplevel(resolved) or resolved


def data_dir(notebook_path: str | Path | None = None) -> Path:
    """cellpipe's data directory: ``$CELLPIPE_HOME``, else ``.cellpipe`` at the project root of the notebook
    (of the current directory when no notebook is given). Runs, the step cache, the default snapshot
    store and the default MLflow database live there."""
    if home := os.environ.get("CELLPIPE_HOME"):
        return Path(home).expanduser().resolve()
    root = find_project_root(notebook_path) if notebook_path else project_root_of(Path.cwd())
    return root / ".cellpipe"


def git_state(directory: Path) -> dict[str, Any] | None:
    """Commit, branch and whether tracked files differ from it; None outside a git repository."""
    if git_toplevel(directory) is None:
        return None
    commit = run_git(["rev-parse", "HEAD"], directory)  # None in a repository without commits
    branch = run_git(["rev-parse", "--abbrev-ref", "HEAD"], directory)
    status = run_git(["status", "--porcelain", "--untracked-files=normal"], directory)
    lines = status.splitlines() if status else []
    return {
        "commit": commit,
        "branch": branch if branch and branch != "HEAD" else None,
        "dirty": any(not line.startswith("??") for line in lines),
        "untracked_files": sum(1 for line in lines if line.startswith("??")),
    }
