"""Dashboard pages: the team's members and invitations. Everyone reads it; only owners change it."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import mail
from ..extensions import db
from ..roles import ROLES, requires
from ..services import team
from ..services.common import ValidationError
from .forms import InviteForm, RoleForm

bp = Blueprint("team", __name__)


def _page(form: InviteForm | None = None, link: str | None = None, status: int = 200):
    return render_template("team/index.html", members=team.members(), invitations=team.open_invitations(),
                           form=form or InviteForm(), link=link, roles=ROLES), status


def invitation_email(org: str, inviter: str, role: str, link: str, days: int) -> tuple[str, str]:
    subject = f"{inviter} invited you to {org} on AgentHooks"
    body = (f"{inviter} invited you to join {org} on AgentHooks as {role}.\n\n"
            f"Accept the invitation and choose your password here:\n{link}\n\n"
            f"The link works once, for {days} days. If you did not expect it, ignore this email.\n")
    return subject, body


@bp.get("/team")
@login_required
def index():
    """Members with their roles, open invitations and, for owners, the invitation form."""
    return _page()


@bp.post("/team/invitations")
@requires("owner")
@login_required
def invite():
    """Invite a teammate: email them the link, or write it to the log (and show it here) without a mail server."""
    form = InviteForm()
    if not form.validate_on_submit():
        return _page(form, status=form.status)
    try:
        invitation, token = team.invite(form.email.data, form.role.data, current_user.email)
    except ValidationError as exc:
        form.add_error(exc)
        return _page(form, status=form.status)
    db.session.commit()
    link = url_for("auth.accept_invitation", token=token, _external=True)
    days = current_app.config["INVITATION_DAYS"]
    if mail.send(invitation.email, *invitation_email(current_user.tenant.name, current_user.email,
                                                     invitation.role, link, days)):
        flash(f"Invitation emailed to {invitation.email}.", "success")
        return redirect(url_for("team.index"))
    # No mail went out: the owner passes the link on (it is also in the log).
    flash(f"No email was sent to {invitation.email} (no mail server is configured, or it failed). "
          "Send them the link below; it is shown only now.", "info")
    return _page(link=link)


@bp.post("/team/invitations/<invitation_id>/revoke")
@requires("owner")
@login_required
def revoke(invitation_id):
    invitation = team.revoke_invitation(invitation_id)
    db.session.commit()
    flash(f"The invitation of {invitation.email} was withdrawn: its link no longer works.", "success")
    return redirect(url_for("team.index"))


@bp.post("/team/members/<user_id>/role")
@requires("owner")
@login_required
def change_role(user_id):
    form = RoleForm()
    if form.validate_on_submit():
        try:
            user = team.change_role(user_id, form.role.data)
        except ValidationError as exc:
            db.session.rollback()
            flash(exc.message, "error")
        else:
            db.session.commit()
            flash(f"{user.email} is now {user.role}.", "success")
    return redirect(url_for("team.index"))


@bp.post("/team/members/<user_id>/remove")
@requires("owner")
@login_required
def remove(user_id):
    """Remove a member (hx-confirm asked first); their session ends at their next request."""
    try:
        user = team.remove(user_id)
    except ValidationError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        target = url_for("team.index")
    else:
        db.session.commit()
        flash(f"{user.email} was removed from the team.", "success")
        target = url_for("auth.login") if user.id == current_user.id else url_for("team.index")
    if request.htmx:
        return "", 200, {"HX-Redirect": target}
    return redirect(target)
