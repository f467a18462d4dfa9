"""A directory of its own for each test: a fresh runtime, one unit of work, and a tenant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from entryway.config.settings import Settings
from entryway.identity.directory.service import DirectoryService
from entryway.runtime import Runtime
from entryway.store.models import TenantRow


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime.open(Settings(data_dir=tmp_path))
    yield rt
    rt.close()


@pytest.fixture
def session(runtime: Runtime) -> Iterator[Session]:
    with runtime.db.unit_of_work() as s:
        yield s


@pytest.fixture
def directory(runtime: Runtime, session: Session) -> DirectoryService:
    return DirectoryService(session, runtime.clock, runtime.digester)


@pytest.fixture
def tenant(directory: DirectoryService) -> TenantRow:
    return directory.create_tenant(["contoso.test"])
