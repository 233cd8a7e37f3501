"""Dashboard pages: agents."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required

from ..dashboard.paging import keyset_page
from ..dashboard.toast import toast
from ..extensions import db
from ..services import activity, agents, budget
from ..services.common import ValidationError
from ..tenancy import current_tenant_id
from .forms import AgentForm

bp = Blueprint("agents", __name__)


PAGE_SIZE = 100  # agents a page of the list: a tenant with an agent per customer has hundreds


@bp.get("/agents")
@login_required
def index():
    """List the agents in name order, a page at a time, with how many events each sent in the last 24 hours
    and when its last came; warn about every agent throttled in the last hour, on whichever page it is."""
    page = keyset_page(agents.agents_by_name, "agents.index", PAGE_SIZE,
                       "That page of agents does not exist: here is the first.")
    throttled = budget.throttled_last_hour(current_tenant_id())
    return render_template("agents/list.html", agents=page.rows,
                           activity=activity.of_agents([a.id for a in page.rows]),
                           throttled=throttled, throttled_agents=agents.get_agents(throttled),
                           first_url=page.first_url, next_url=page.next_url)


@bp.route("/agents/new", methods=["GET", "POST"])
@login_required
def new():
    """Register an agent."""
    form = AgentForm()
    if form.validate_on_submit():
        try:
            agent = agents.create_agent(form.payload())
        except ValidationError as exc:
            form.add_error(exc)
        else:
            db.session.commit()
            flash(f"Agent “{agent.name}” created. Its id is {agent.id}.", "success")
            return redirect(url_for("agents.index"))
    return render_template("agents/form.html", form=form, agent=None), form.status


@bp.route("/agents/<agent_id>/edit", methods=["GET", "POST"])
@login_required
def edit(agent_id):
    """Rename or redescribe an agent."""
    agent = agents.get_agent(agent_id)
    form = AgentForm(obj=agent)
    if form.validate_on_submit():
        try:
            agents.update_agent(agent.id, form.payload())
        except ValidationError as exc:
            form.add_error(exc)
        else:
            db.session.commit()
            flash(f"Agent “{agent.name}” saved.", "success")
            return redirect(url_for("agents.index"))
    return render_template("agents/form.html", form=form, agent=agent), form.status


@bp.post("/agents/<agent_id>/delete")
@login_required
def delete(agent_id):
    """Delete an agent (its past events stay in the log)."""
    name = agents.get_agent(agent_id).name
    agents.delete_agent(agent_id)
    db.session.commit()
    if request.htmx:
        return "", 200, toast(f"Agent “{name}” deleted.")  # the row's hx-swap removes it
    flash(f"Agent “{name}” deleted.", "success")
    return redirect(url_for("agents.index"))
