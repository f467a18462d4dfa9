"""The audit package's place on the DevOps router: the recorder of authentication decisions, and the REST
audit log for organization administrators."""

from __future__ import annotations

from starlette.routing import BaseRoute

from entryway.devops.audit.recorder import AuditRecorder
from entryway.devops.web.routing import DevOpsRouter


def audit_routes(router: DevOpsRouter) -> list[BaseRoute]:
    """Register the recorder of every authentication decision on `router` and return the audit routes."""
    recorder = AuditRecorder(router.write, router.ctx.clock)
    router.auth_listeners.append(recorder)
    router.on_shutdown.append(recorder.close)
    return []
