"""Git over smart HTTP with the real git CLI against the shared server (issue 5)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from entryway.devops.git.storage import delete_bare_repository, init_bare_repository, repository_path

GIT = shutil.which("git") or "/usr/bin/git"


def test_init_bare_repository_creates_a_bare_repo_on_main(tmp_path: Path) -> None:
    path = init_bare_repository(str(tmp_path), "0b7c3a7e-2f9f-4a55-9d7e-1f0d3f5b8a11")
    assert path == tmp_path / "0b7c3a7e-2f9f-4a55-9d7e-1f0d3f5b8a11.git"
    head = (path / "HEAD").read_text().strip()
    assert head == "ref: refs/heads/main"
    config = subprocess.run(
        [GIT, "--git-dir", str(path), "config", "--get", "http.receivepack"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert config.stdout.strip() == "true"
    assert init_bare_repository(str(tmp_path), "0b7c3a7e-2f9f-4a55-9d7e-1f0d3f5b8a11") == path
    delete_bare_repository(str(tmp_path), "0b7c3a7e-2f9f-4a55-9d7e-1f0d3f5b8a11")
    assert not path.exists()


@pytest.mark.parametrize("repo_id", ["../escape", "a/b", "", "x.git", ".hidden"])
def test_repository_path_refuses_what_is_not_an_id(tmp_path: Path, repo_id: str) -> None:
    with pytest.raises(ValueError, match="not a repository id"):
        repository_path(tmp_path, repo_id)
