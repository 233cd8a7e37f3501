"""AgentHooks: webhooks for AI agents."""
from __future__ import annotations

import logging
import os
import weakref
from pathlib import Path

from flask import Flask
from flask.app import iscoroutinefunction

__version__ = "0.1.0"


def _project_root() -> Path:
    """The checkout that holds templates/, static/ and migrations/ (the working directory after a plain
    ``pip install .``, as on a Heroku-style platform where the app runs from its checkout)."""
    beside_package = Path(__file__).resolve().parent.parent
    return beside_package if (beside_package / "templates").is_dir() else Path.cwd()


ROOT = _project_root()


# Callable -> whether it is ``async def``. Weak: a callable made for one request must not outlive it here.
_IS_ASYNC: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class App(Flask):
    """Flask, remembering which views and hooks are ``async def``: Flask asks inspect anew for each of a
    request's dozen or so (1 % of an ingest's instructions), and the answer never changes."""

    def ensure_sync(self, func):
        key = getattr(func, "__func__", func)  # a bound method is made anew on each access, its function is not
        try:
            is_async = _IS_ASYNC[key]
        except (KeyError, TypeError):  # not seen yet, or a callable that cannot be weakly referenced
            is_async = iscoroutinefunction(func)
            try:
                _IS_ASYNC[key] = is_async
            except TypeError:
                pass
        return self.async_to_sync(func) if is_async else func


def create_app(test_config: dict | None = None) -> Flask:
    """Create the web application, configured from the environment (or ``test_config`` on top)."""
    app = App(__name__, instance_path=os.environ.get("AGENTHOOKS_INSTANCE_PATH", str(ROOT / "instance")),
              template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    from . import config
    app.config.update(config.from_environment(app.instance_path))
    if test_config:
        app.config.update(test_config)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    from .extensions import csrf, db, htmx, limiter, limiter_passes_by, login_manager, migrate
    from . import models  # noqa: F401  (the models must be known before migrations run)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    htmx.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"])
    # A sliding window counter: no burst of twice the limit across a window's edge, fixed memory per key,
    # and one Redis round trip to count plus one for the X-RateLimit headers (a fixed window takes three).
    app.config.setdefault("RATELIMIT_STRATEGY", "sliding-window-counter")
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 1, "socket_timeout": 1,
                                                        **app.config["REDIS_OPTIONS"]})
    limiter.init_app(app)
    limiter_passes_by(app, "api")  # the API keeps its own count (api/ratelimit.py)
    login_manager.init_app(app)
    from .auth.session import setup_login
    setup_login(app)
    from . import roles, security
    security.init_app(app)
    roles.init_app(app)


def register_blueprints(app: Flask) -> None:
    from .api import bp as api_bp
    from .agents.views import bp as agents_bp
    from .audit.views import bp as audit_bp
    from .auth.views import bp as auth_bp
    from .dashboard.views import bp as dashboard_bp
    from .deliveries.views import bp as deliveries_bp
    from .endpoints.views import bp as endpoints_bp
    from .event_types.views import bp as event_types_bp
    from .keys.views import bp as keys_bp

    for blueprint in (api_bp, auth_bp, dashboard_bp, agents_bp, endpoints_bp, keys_bp, event_types_bp,
                      deliveries_bp, audit_bp):
        app.register_blueprint(blueprint)
    # Agent-native pages: conversation timelines, event schemas, and the agents pages' budget warnings.
    from .budgets.views import bp as budgets_bp
    from .conversations.views import bp as conversations_bp
    from .dashboard.pickers import bp as pickers_bp
    from .schemas.views import bp as schemas_bp
    from .team.views import bp as team_bp

    for blueprint in (conversations_bp, schemas_bp, budgets_bp, team_bp, pickers_bp):
        app.register_blueprint(blueprint)


def register_errorhandlers(app: Flask) -> None:
    from .errors import register
    register(app)


def register_commands(app: Flask) -> None:
    from .cli import register
    register(app)
