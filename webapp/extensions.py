"""Bare extension instances; create_app() initialises them."""
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy import event
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


def core(statement, params=None):
    """Run a Core statement in the session's transaction, past the ORM's execute machinery (its events,
    the tenancy listener included): for the few statements on every event's path, which filter by tenant
    themselves. Returns the Core result."""
    return db.session.connection().execute(statement, params)
