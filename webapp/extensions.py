"""Bare extension instances; create_app() initialises them."""
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = Htmx()
# Limits are declared on the routes; a Redis outage must never turn into refused events,
# so the limiter falls back to memory and swallows storage errors.
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True,
                  swallow_errors=True, in_memory_fallback_enabled=True)
