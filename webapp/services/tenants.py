"""Sign-up, log-in and the operator's tenant creation."""
from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from ..models import Tenant, User
from ..tenancy import all_tenants, tenant_scope
from .common import ValidationError

MIN_PASSWORD_LENGTH = 8
# Compared against when the email is unknown, so a wrong email costs the same time as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def normalize_email(email: str) -> str:
    """Raises ValidationError when the address is not valid."""
    try:
        return validate_email(email or "", check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise ValidationError("email", "is not a valid email address") from None


def create_tenant(org: str, email: str, password: str) -> tuple[Tenant, User]:
    """Create a tenant with its first user, in the current transaction (not committed).

    Raises:
        ValidationError: a field is missing or invalid, or the email is taken.
    """
    org = (org or "").strip()
    if not org:
        raise ValidationError("org", "Organization is required")
    if len(org) > 200:
        raise ValidationError("org", "Organization must be at most 200 characters")
    email = normalize_email(email)
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValidationError("password", f"Password must be at least {MIN_PASSWORD_LENGTH} characters")
    if find_user_by_email(email) is not None:
        raise ValidationError("email", "An account with this email already exists")
    tenant = Tenant(name=org)
    db.session.add(tenant)
    db.session.flush()
    with tenant_scope(tenant.id):
        user = User(email=email, password_hash=generate_password_hash(password))
        db.session.add(user)
        db.session.flush()
    return tenant, user


def find_user_by_email(email: str) -> User | None:
    with all_tenants():  # log-in comes before we know the tenant
        return db.session.scalars(select(User).where(func.lower(User.email) == email.lower())).one_or_none()


def load_user(user_id: str) -> User | None:
    with all_tenants():  # the session names the user; the user names the tenant
        return db.session.scalars(select(User).where(User.id == user_id)).one_or_none()


def authenticate(email: str, password: str) -> User | None:
    """Return the user whose email and password these are, or None (without saying which was wrong)."""
    user = find_user_by_email((email or "").strip())
    if user is None:
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    return user if check_password_hash(user.password_hash, password or "") else None
