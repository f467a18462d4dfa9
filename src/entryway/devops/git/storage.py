"""Bare repositories on disk: one `{git_root}/{repo_id}.git` per repository record.

The record's id names the directory, so a rename never moves data and a name never reaches the file system.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

# Repository ids are UUIDs; anything else would let a caller step outside git_root.
_REPO_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]*$")

# Settings of every new bare repository. Azure DevOps lets a user with the ForcePush permission rewrite a
# branch, so git's defaults for non-fast-forward updates are kept; the reflog records every ref update so a
# force push can be undone by an administrator.
_CONFIG: tuple[tuple[str, str], ...] = (
    ("http.receivepack", "true"),
    ("http.uploadpack", "true"),
    ("core.logAllRefUpdates", "always"),
    ("uploadpack.allowFilter", "true"),
    ("uploadpack.allowAnySHA1InWant", "true"),
)


def repository_path(git_root: str | Path, repo_id: str) -> Path:
    """The bare repository directory of `repo_id` under `git_root` (not checked for existence)."""
    if not _REPO_ID.match(repo_id) or repo_id.endswith(".git"):
        raise ValueError(f"not a repository id: {repo_id!r}")
    return Path(git_root) / f"{repo_id}.git"


def init_bare_repository(git_root: str, repo_id: str) -> Path:
    """Create the bare repository of `repo_id` (branch `main`); idempotent, returns its path."""
    path = repository_path(git_root, repo_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    _git("init", "--quiet", "--bare", "--initial-branch=main", str(path))
    for key, value in _CONFIG:
        _git("--git-dir", str(path), "config", key, value)
    return path


def delete_bare_repository(git_root: str, repo_id: str) -> None:
    """Remove the repository of `repo_id` from disk; nothing happens when it is absent."""
    shutil.rmtree(repository_path(git_root, repo_id), ignore_errors=True)


def _git(*args: str) -> None:
    subprocess.run(  # noqa: S603 - fixed executable, arguments are ours
        ["git", *args],  # noqa: S607 - git is found on PATH like every git client
        check=True,
        capture_output=True,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": "/nonexistent",
        },
    )
