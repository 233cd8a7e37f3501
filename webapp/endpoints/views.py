"""Dashboard pages: endpoints, their signing secrets and test events."""
from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_login import login_required

from ..auth.session import recent_login_required
from ..dashboard.paging import keyset_page
from ..roles import requires
from ..extensions import db
from ..models import Endpoint, utcnow
from ..services import agents, deliveries, endpoints, events, stats
from ..services.common import ValidationError
from .forms import EndpointForm, RecoverForm

bp = Blueprint("endpoints", __name__)
PAGE_SIZE = 100  # endpoints a page of the list: a tenant with an endpoint per customer's agent has hundreds


def _no_store(body):
    """A response that no cache keeps: it carries a secret."""
    response = make_response(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def _detail(endpoint: Endpoint, secret: str | None = None) -> str:
    recent, _ = deliveries.list_deliveries(endpoint_id=endpoint.id, limit=10)
    now = utcnow()
    overlap_until = endpoint.previous_secret_expires_at if endpoint.previous_secret_encrypted and \
        endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > now else None
    return render_template("endpoints/detail.html", endpoint=endpoint, secret=secret, recent=recent,
                           health=stats.endpoint_health(now, [endpoint.id]).get(endpoint.id, stats.Health()),
                           overlap_until=overlap_until, recover_form=RecoverForm(),
                           recover_rate=deliveries.recover_rate(endpoint),
                           agent_names=agents.names_of(endpoint.agent_ids or []))


@bp.get("/endpoints")
@login_required
def index():
    """List the endpoints, newest first, a page at a time, with their health: last delivery, success rate and
    p95 over the last 24 h."""
    page = keyset_page(endpoints.list_endpoints, "endpoints.index", PAGE_SIZE,
                       "That page of endpoints does not exist: here are the newest.")
    rows = page.rows
    return render_template(
        "endpoints/list.html", endpoints=rows, health=stats.endpoint_health(endpoint_ids=[e.id for e in rows]),
        empty_health=stats.Health(), agent_names=agents.names_of(a for e in rows for a in e.agent_ids or []),
        older_url=page.next_url, newest_url=page.first_url)


@bp.route("/endpoints/new", methods=["GET", "POST"])
@login_required
def new():
    """Add an endpoint."""
    form = EndpointForm()
    if form.validate_on_submit():
        try:
            endpoint = endpoints.create_endpoint(form.payload())
        except ValidationError as exc:
            form.add_error(exc)
        else:
            db.session.commit()
            flash("Endpoint created. Verify its deliveries with the signing secret below.", "success")
            return redirect(url_for("endpoints.detail", endpoint_id=endpoint.id))
    return render_template("endpoints/form.html", form=form, endpoint=None), form.status


@bp.get("/endpoints/<endpoint_id>")
@login_required
def detail(endpoint_id):
    """Show an endpoint, its masked secret and its latest deliveries."""
    return _detail(endpoints.get_endpoint(endpoint_id))


@bp.get("/endpoints/<endpoint_id>/secret")
@requires("admin")  # a secret, or the step before a new one
@login_required
@recent_login_required
def secret(endpoint_id):
    """Reveal the signing secret: a fragment for htmx, the whole page otherwise."""
    endpoint, value = endpoints.reveal_secret(endpoint_id)
    db.session.commit()  # the audit event of the reveal
    if request.htmx:
        return _no_store(render_template("endpoints/_secret.html", endpoint=endpoint, secret=value))
    return _no_store(_detail(endpoint, value))


@bp.route("/endpoints/<endpoint_id>/edit", methods=["GET", "POST"])
@login_required
def edit(endpoint_id):
    """Change an endpoint's URL, subscriptions or enabled flag."""
    endpoint = endpoints.get_endpoint(endpoint_id)
    form = EndpointForm(obj=endpoint)
    if form.validate_on_submit():
        try:
            endpoints.update_endpoint(endpoint.id, form.payload())
        except ValidationError as exc:
            form.add_error(exc)
        else:
            db.session.commit()
            flash("Endpoint saved.", "success")
            return redirect(url_for("endpoints.detail", endpoint_id=endpoint.id))
    return render_template("endpoints/form.html", form=form, endpoint=endpoint), form.status


@bp.get("/endpoints/<endpoint_id>/rotate")
@requires("admin")  # a secret, or the step before a new one
@login_required
@recent_login_required
def confirm_rotate(endpoint_id):
    """Ask before rotating the signing secret."""
    return render_template("endpoints/rotate.html", endpoint=endpoints.get_endpoint(endpoint_id))


@bp.post("/endpoints/<endpoint_id>/rotate")
@login_required
@recent_login_required
def rotate(endpoint_id):
    """Rotate the signing secret and show the new one."""
    value = endpoints.rotate_secret(endpoint_id)
    db.session.commit()
    return _no_store(render_template("endpoints/rotated.html", endpoint=endpoints.get_endpoint(endpoint_id),
                                     secret=value))


@bp.post("/endpoints/<endpoint_id>/test")
@login_required
def send_test(endpoint_id):
    """Send a webhook.test event to this endpoint alone."""
    accepted = events.send_test_event(endpoint_id)
    flash(f"Sent a webhook.test event ({accepted.id}). Its delivery is listed below.", "success")
    return redirect(url_for("endpoints.detail", endpoint_id=endpoint_id))


@bp.post("/endpoints/<endpoint_id>/enable")
@login_required
def enable(endpoint_id):
    """Enable a disabled endpoint again."""
    endpoints.update_endpoint(endpoint_id, {"enabled": True})
    db.session.commit()
    flash("Endpoint enabled: new events will be delivered to it.", "success")
    return redirect(url_for("endpoints.detail", endpoint_id=endpoint_id))


@bp.post("/endpoints/<endpoint_id>/recover")
@login_required
def recover(endpoint_id):
    """Resend every failed delivery of the endpoint since the chosen time, paced (as the API's recover)."""
    endpoint = endpoints.get_endpoint(endpoint_id)
    form = RecoverForm()
    if form.validate_on_submit():
        rate = deliveries.recover_rate(endpoint)
        count = deliveries.recover(endpoint.id, utcnow() - timedelta(hours=int(form.hours.data)))
        period = dict(form.hours.choices)[form.hours.data]
        if count:
            flash(f"Resending {count} failed deliver{'y' if count == 1 else 'ies'} from {period}, "
                  f"at most {rate:g} a second. Watch them in the log.", "success")
        else:
            flash(f"No failed deliveries from {period} to resend.", "info")
    else:
        flash("Choose how far back to look for failed deliveries.", "error")
    return redirect(url_for("endpoints.detail", endpoint_id=endpoint.id))


@bp.post("/endpoints/<endpoint_id>/delete")
@login_required
def delete(endpoint_id):
    """Delete an endpoint and its deliveries."""
    endpoints.delete_endpoint(endpoint_id)
    db.session.commit()
    flash("Endpoint deleted.", "success")
    if request.htmx:  # hx-confirm asked first; have the browser load the list
        return "", 200, {"HX-Redirect": url_for("endpoints.index")}
    return redirect(url_for("endpoints.index"))
