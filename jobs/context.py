"""The application and tenant context a job runs in."""
from __future__ import annotations

import contextlib

from flask import current_app, has_app_context

from webapp.extensions import db
from webapp.tenancy import tenant_scope

_app = None


def _application():
    global _app
    if has_app_context():
        return current_app._get_current_object()
    if _app is None:  # a worker started outside the Flask CLI (e.g. plain `rq worker`)
        from webapp import create_app
        _app = create_app()
    return _app


@contextlib.contextmanager
def job_context(tenant_id: str | None = None, app=None):
    """Run a job with an app context and, when given, as that tenant; always release the DB session.
    ``app``: the worker's, for work that a job hands to another thread (which has no app context)."""
    with (app or _application()).app_context():
        try:
            if tenant_id is None:
                yield
            else:
                with tenant_scope(tenant_id):
                    yield
        finally:
            db.session.remove()
