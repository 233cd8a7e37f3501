"""The team: members with roles, and invitations by email link (the link holds a token kept only as a hash)."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from ..extensions import db
from ..models import Invitation, User, utcnow
from ..roles import ROLES
from ..tenancy import all_tenants, tenant_scope
from . import audit
from .common import ServiceError, ValidationError, get_owned
from .tenants import MIN_PASSWORD_LENGTH, find_user_by_email, normalize_email


class InvitationUnusable(ServiceError):
    """The link was used, revoked or has expired; the message says which."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _role(role: str) -> str:
    if role not in ROLES:
        raise ValidationError("role", f"Role must be one of {', '.join(ROLES)}")
    return role


def members() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.created_at, User.id)))


def open_invitations() -> list[Invitation]:
    """Invitations not yet accepted or revoked (expired ones too, so the owner sees why nobody joined)."""
    return list(db.session.scalars(select(Invitation).where(
        Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None)).order_by(Invitation.created_at.desc())))


def invite(email: str, role: str, invited_by: str) -> tuple[Invitation, str]:
    """Invite ``email`` with ``role``; returns the invitation and its token (for the link, shown once).
    A new invitation to the same address replaces the open one."""
    email = normalize_email(email)
    role = _role(role)
    if db.session.scalars(select(User.id).where(func.lower(User.email) == email)).first():
        raise ValidationError("email", "is already a member of this team")
    for earlier in db.session.scalars(select(Invitation).where(
            Invitation.email == email, Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))):
        earlier.revoked_at = utcnow()
    token = secrets.token_urlsafe(32)
    invitation = Invitation(email=email, role=role, token_hash=_hash(token), invited_by_label=invited_by,
                            expires_at=utcnow() + timedelta(days=current_app.config["INVITATION_DAYS"]))
    db.session.add(invitation)
    db.session.flush()
    audit.record("member.invited", "invitation", invitation.id, email=email, role=role)
    return invitation, token


def find_invitation(token: str) -> Invitation:
    """The invitation of a link, whichever tenant it is for (the link is all the visitor has).

    Raises:
        InvitationUnusable: unknown, used, revoked or expired, with a message saying which.
    """
    with all_tenants():
        invitation = db.session.scalars(select(Invitation).where(
            Invitation.token_hash == _hash(token or ""))).one_or_none()
    if invitation is None:
        raise InvitationUnusable("This invitation link is not valid. Check that you copied all of it.")
    if invitation.accepted_at is not None:
        raise InvitationUnusable("This invitation was already used. Log in with the email it was sent to.")
    if invitation.revoked_at is not None:
        raise InvitationUnusable("This invitation was withdrawn. Ask the team's owner for a new one.")
    if invitation.expires_at <= utcnow():
        raise InvitationUnusable("This invitation has expired. Ask the team's owner for a new one.")
    return invitation


def accept(token: str, password: str) -> User:
    """Create the invited user in the invitation's tenant with its role (in the current transaction).

    Raises:
        InvitationUnusable: see ``find_invitation``.
        ValidationError: the password is too short, or the email already has an account.
    """
    invitation = find_invitation(token)
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValidationError("password", f"Password must be at least {MIN_PASSWORD_LENGTH} characters")
    if find_user_by_email(invitation.email) is not None:
        # One account belongs to one organization; we do not merge them.
        raise ValidationError("email", f"{invitation.email} already has an AgentHooks account. Log in with it, "
                                       "or ask for an invitation to another address.")
    with tenant_scope(invitation.tenant_id):
        user = User(email=invitation.email, role=invitation.role, password_hash=generate_password_hash(password))
        db.session.add(user)
        invitation.accepted_at = utcnow()
        db.session.flush()
        audit.record("member.joined", "user", user.id, actor={"actor_user_id": user.id, "actor_label": user.email},
                     email=user.email, role=user.role)
    return user


def _owners() -> int:
    return db.session.scalar(select(func.count()).select_from(User).where(User.role == "owner"))


def change_role(user_id: str, role: str) -> User:
    """Raises NotFound, or ValidationError when it would leave the team without an owner."""
    user = get_owned(User, user_id)
    role = _role(role)
    if user.role == role:
        return user
    if user.role == "owner" and _owners() <= 1:
        raise ValidationError("role", "The team needs an owner: make someone else owner first")
    audit.record("member.role_changed", "user", user.id, email=user.email, from_role=user.role, role=role)
    user.role = role
    db.session.flush()
    return user


def remove(user_id: str) -> User:
    """Remove a member: their session ends at their next request. Raises NotFound or ValidationError."""
    user = get_owned(User, user_id)
    if user.role == "owner" and _owners() <= 1:
        raise ValidationError("role", "The team needs an owner: make someone else owner first")
    audit.record("member.removed", "user", user.id, email=user.email, role=user.role)
    db.session.delete(user)
    db.session.flush()
    return user


def revoke_invitation(invitation_id: str) -> Invitation:
    invitation = get_owned(Invitation, invitation_id)
    if invitation.revoked_at is None and invitation.accepted_at is None:
        invitation.revoked_at = utcnow()
        audit.record("invitation.revoked", "invitation", invitation.id, email=invitation.email, role=invitation.role)
    return invitation
