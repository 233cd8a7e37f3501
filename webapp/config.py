"""Configuration, read only from the environment (see the contract's table)."""
import os
from pathlib import Path

DEFAULT_RETRY_SCHEDULE = "5,300,1800,7200,18000,36000,36000"


def _database_url(instance_path: str) -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return "sqlite:///" + str(Path(instance_path) / "agenthooks.sqlite3")
    # Heroku hands out postgres://, which SQLAlchemy 2 no longer accepts; we use psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _schedule(raw: str) -> list[float]:
    try:
        delays = [float(part) for part in raw.split(",") if part.strip()]
    except ValueError as exc:
        raise RuntimeError(f"DELIVERY_RETRY_SCHEDULE must be comma-separated seconds, got {raw!r}") from exc
    if any(d < 0 for d in delays):
        raise RuntimeError("DELIVERY_RETRY_SCHEDULE may not contain negative delays")
    return delays


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def from_environment(instance_path: str) -> dict:
    """Build the Flask config mapping from environment variables."""
    development = _flag("FLASK_DEBUG") or os.environ.get("AGENTHOOKS_ENV") == "development"
    secret_key = os.environ.get("SECRET_KEY")
    if not secret_key:
        if not development:
            raise RuntimeError("SECRET_KEY must be set outside development (AGENTHOOKS_ENV=development)")
        secret_key = "dev-only-insecure-secret-key"
    return {
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": _database_url(instance_path),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        # Heroku Redis speaks TLS with a self-signed certificate: REDIS_SSL_CERT_REQS=none accepts it.
        "REDIS_OPTIONS": ({"ssl_cert_reqs": os.environ["REDIS_SSL_CERT_REQS"]}
                          if os.environ.get("REDIS_SSL_CERT_REQS") else {}),
        "DELIVERY_RETRY_SCHEDULE": _schedule(os.environ.get("DELIVERY_RETRY_SCHEDULE", DEFAULT_RETRY_SCHEDULE)),
        "DELIVERY_TIMEOUT": float(os.environ.get("DELIVERY_TIMEOUT", "15")),
        "ENDPOINT_DISABLE_AFTER": float(os.environ.get("ENDPOINT_DISABLE_AFTER", "432000")),
        "ALLOW_PRIVATE_DESTINATIONS": _flag("ALLOW_PRIVATE_DESTINATIONS"),
        "SWEEP_INTERVAL": float(os.environ.get("SWEEP_INTERVAL", "5")),
        "RETENTION_DAYS": float(os.environ.get("RETENTION_DAYS", "30")),
        "RETENTION_INTERVAL": float(os.environ.get("RETENTION_INTERVAL", "3600")),
        # Resends of an endpoint's failed deliveries (recover) go out at most this many a second.
        "RECOVER_RATE": float(os.environ.get("RECOVER_RATE", "10")),
        "INGEST_RATE_LIMIT": os.environ.get("INGEST_RATE_LIMIT", "50000 per minute"),
        # The contract: bodies over 256 KiB are refused with 413.
        "MAX_CONTENT_LENGTH": 256 * 1024,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _flag("SESSION_COOKIE_SECURE"),
        "WTF_CSRF_TIME_LIMIT": None,
        "DEVELOPMENT": development,
    }
