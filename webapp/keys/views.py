"""Dashboard pages: API keys, shown once and revocable."""
from __future__ import annotations

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_login import login_required

from ..dashboard.paging import keyset_page
from ..dashboard.toast import toast
from ..extensions import db
from ..services import api_keys
from ..services.common import ValidationError
from .forms import KeyForm

bp = Blueprint("keys", __name__)
PAGE_SIZE = 100


def _list(form: KeyForm, status: int = 200):
    """The keys page: a page of the keys, newest first, and the form."""
    page = keyset_page(api_keys.list_keys, "keys.index", PAGE_SIZE, "That page of API keys does not exist: "
                                                                     "here are the newest.")
    return render_template("keys/list.html", keys=page.rows, form=form, older_url=page.next_url,
                           newest_url=page.first_url), status


@bp.get("/keys")
@login_required
def index():
    """List the API keys (their prefixes only) with a form for a new one."""
    return _list(KeyForm())


@bp.post("/keys")
@login_required
def create():
    """Create a key and show its plaintext, this once."""
    form = KeyForm()
    if form.validate_on_submit():
        try:
            key, plaintext = api_keys.create_key(**form.payload())
        except ValidationError as exc:
            form.add_error(exc)
        else:
            db.session.commit()
            response = make_response(render_template("keys/created.html", key=key, plaintext=plaintext))
            response.headers["Cache-Control"] = "no-store"
            return response
    return _list(form, form.status)


@bp.post("/keys/<key_id>/revoke")
@login_required
def revoke(key_id):
    """Revoke a key: requests with it get 401 from now on."""
    key = api_keys.revoke_key(key_id)
    db.session.commit()
    if request.htmx:
        return render_template("keys/_row.html", key=key), 200, toast(f"Key “{key.name}” revoked.")
    flash(f"Key “{key.name}” revoked.", "success")
    return redirect(url_for("keys.index"))
