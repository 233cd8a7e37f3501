"""Bare extension instances; create_app() initialises them."""
import functools

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """SQLite: enforce foreign keys (cascades) and let the web and worker processes share the file."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = Htmx()
# Limits are declared on the routes; a Redis outage must never turn into refused events,
# so the limiter falls back to memory and swallows storage errors.
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True,
                  swallow_errors=True, in_memory_fallback_enabled=True)


def limiter_passes_by(app: Flask, blueprint: str) -> None:
    """Let the limiter's request hooks pass ``blueprint``'s requests by: they carry no limit of Flask-Limiter's.

    Flask-Limiter hooks into every request of the app, and before its request filters it resolves the
    request's limits (the view's name, found with inspect): ~5 % of an ingest's instructions, for the API,
    which keeps its own count (api/ratelimit.py). Call after ``limiter.init_app(app)``."""
    def before(hook):
        return functools.wraps(hook)(lambda: None if request.blueprint == blueprint else hook())

    def after(hook):
        return functools.wraps(hook)(lambda response: response if request.blueprint == blueprint else hook(response))

    def teardown(hook):
        return functools.wraps(hook)(lambda exc: None if request.blueprint == blueprint else hook(exc))

    found = 0
    for hooks, wrap in ((app.before_request_funcs, before), (app.after_request_funcs, after),
                        (app.teardown_request_funcs, teardown)):
        app_hooks = hooks.get(None, [])
        for i, hook in enumerate(app_hooks):
            # Bound methods, and a functools.partial(Limiter.__inject_headers, limiter).
            if getattr(hook, "__self__", None) is limiter or getattr(hook, "args", (None,))[:1] == (limiter,):
                app_hooks[i], found = wrap(hook), found + 1
    if found != 3:  # a Flask-Limiter whose hooks changed: fail at start-up, not by limiting the API twice
        raise RuntimeError(f"expected Flask-Limiter's three request hooks on the app, found {found}")


def core(statement, params=None):
    """Run a Core statement in the session's transaction, past the ORM's execute machinery (its events,
    the tenancy listener included): for the few statements on every event's path, which filter by tenant
    themselves. Returns the Core result."""
    return db.session.connection().execute(statement, params)


# psycopg prepares a statement on its fifth run on a connection, and PostgreSQL may then plan it once for any
# values. For a range of ids that plan is a walk of the primary key's range filtered row by row: the chart's
# count of one hour's pending deliveries (then one statement an hour) read the hour's 41,000 rows in 30 ms,
# where the plan for its values reads its 419 index entries in 0.3-0.7 ms. A page of one endpoint's failed
# deliveries after a cursor (the API's, the log's) walked the primary key back from the cursor, filtering:
# 75 ms against 1.3 ms through (tenant_id, status, id), at a million deliveries. Ingest's statements, which
# look rows up by equal keys, keep their plans (planning each would cost every event).
_CUSTOM_PLANS = text("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)")


def plan_for_values() -> None:
    """On PostgreSQL, plan the rest of this transaction's statements for their values (SET LOCAL): for reads
    of a range whose best plan depends on its bounds, such as the chart's window and a page after a cursor."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_CUSTOM_PLANS)
