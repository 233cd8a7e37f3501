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


def _count(name: str) -> int:
    raw = os.environ.get(name, "").strip() or "0"
    if not raw.isdigit():
        raise RuntimeError(f"{name} must be a whole number (of proxies), got {raw!r}")
    return int(raw)


def _whole(name: str, default: str) -> int:
    raw = os.environ.get(name, "").strip() or default
    if not raw.isdigit():
        raise RuntimeError(f"{name} must be a whole number, got {raw!r}")
    return int(raw)


def _rate_limit(name: str, default: str) -> str:
    """A limit such as "10 per minute" (the `limits` library's notation), checked at start-up, not at the
    first request it would refuse."""
    from limits import parse

    raw = os.environ.get(name, "").strip() or default
    try:
        parse(raw)
    except ValueError:
        raise RuntimeError(f"{name} must be a rate such as '100 per minute', got {raw!r}") from None
    return raw


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
        "INGEST_RATE_LIMIT": _rate_limit("INGEST_RATE_LIMIT", "50000 per minute"),
        # The runaway-agent guard: events a minute each agent may send (0: no limit) unless the agent has its
        # own budget. The window is a minute; tests shorten it.
        "AGENT_EVENT_BUDGET": _whole("AGENT_EVENT_BUDGET", "600"),
        "AGENT_EVENT_BUDGET_WINDOW": _whole("AGENT_EVENT_BUDGET_WINDOW", "60"),
        # The contract: bodies over 256 KiB are refused with 413.
        "MAX_CONTENT_LENGTH": 256 * 1024,
        # Log-in attempts per account (the email tried) and per client IP, sign-ups per IP.
        "LOGIN_RATE_LIMIT": _rate_limit("LOGIN_RATE_LIMIT", "10 per minute"),
        "LOGIN_IP_RATE_LIMIT": _rate_limit("LOGIN_IP_RATE_LIMIT", "30 per minute"),
        "SIGNUP_RATE_LIMIT": _rate_limit("SIGNUP_RATE_LIMIT", "10 per hour"),
        # Signing secrets are encrypted with a key derived from ENCRYPTION_KEY (else SECRET_KEY); earlier
        # values listed in ENCRYPTION_KEYS_OLD still decrypt (see crypto.py and `flask secrets reencrypt`).
        "ENCRYPTION_KEY": os.environ.get("ENCRYPTION_KEY") or None,
        "ENCRYPTION_KEYS_OLD": [k.strip() for k in os.environ.get("ENCRYPTION_KEYS_OLD", "").split(",") if k.strip()],
        # How many proxies in front of the app set X-Forwarded-For/-Proto (Heroku's router: 1). Unset, those
        # headers are ignored: anyone could send them.
        "PROXY_FIX": _count("PROXY_FIX"),
        # Revealing a signing secret in the dashboard asks for the password again after this many seconds.
        "RECENT_LOGIN_SECONDS": float(os.environ.get("RECENT_LOGIN_SECONDS", "600")),
        # Invitation emails: smtp://user:password@host:587 (STARTTLS when offered) or smtps://…:465. Unset, the
        # invitation link is written to the log (and shown to the owner who sent it).
        "SMTP_URL": os.environ.get("SMTP_URL") or None,
        "MAIL_FROM": os.environ.get("MAIL_FROM", "AgentHooks <no-reply@agenthooks.invalid>"),
        "INVITATION_DAYS": _whole("INVITATION_DAYS", "7"),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _flag("SESSION_COOKIE_SECURE"),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": _flag("SESSION_COOKIE_SECURE"),
        "WTF_CSRF_TIME_LIMIT": None,
        "DEVELOPMENT": development,
    }
