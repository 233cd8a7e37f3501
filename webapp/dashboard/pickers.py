"""Pickers: choosing one of the tenant's agents or endpoints in a form.

While the tenant has at most INLINE_MAX of them, a <select> lists them all. Beyond that, listing them would
make every page with the form heavy (218 KiB of options at a thousand agents and endpoints): the picker is a
text box whose suggestions (a <datalist>) htmx fills from a search as the person types, and what was typed,
a name or an id, is resolved by services.choices.resolve when the form comes back."""
from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, render_template, request
from flask_login import login_required

from ..services import choices
from ..services.common import ValidationError

INLINE_MAX = 100

bp = Blueprint("pickers", __name__)


@dataclass(frozen=True)
class Picker:
    kind: str  # a key of choices.KINDS: "agents", "endpoints"
    name: str  # the form field's
    value: str | None  # the chosen id, or what was typed
    label: str | None  # the chosen one's name or URL (None: none chosen, or not one of the tenant's)
    options: list[choices.Choice] | None  # every choice, or None: too many, the picker searches


def picker(kind: str, name: str, value: str | None) -> Picker:
    """A picker of ``kind`` for the field ``name``, showing ``value`` as chosen. One query while the tenant
    has few (it reads one more than INLINE_MAX, to know); two beyond (the chosen one's label)."""
    listed = choices.first(choices.KINDS[kind], INLINE_MAX + 1)
    if len(listed) <= INLINE_MAX:
        return Picker(kind, name, value, next((c.label for c in listed if c.id == value), None), listed)
    return Picker(kind, name, value, choices.label_of(choices.KINDS[kind], value), None)


def _suggestions(kind: str):
    """The <option>s of a picker's datalist: the matches of what its field (the argument ``field`` names) holds."""
    text = request.args.get(request.args.get("field", ""), "")[:2048]
    return render_template("pickers/_suggestions.html", choices=choices.search(choices.KINDS[kind], text))


@bp.get("/choices/agents")
@login_required
def agents():
    return _suggestions("agents")


@bp.get("/choices/endpoints")
@login_required
def endpoints():
    return _suggestions("endpoints")


@bp.get("/choices/agents/tick")
@login_required
def tick_agent():
    """The Add button of an endpoint's agent filter beyond INLINE_MAX agents (htmx): the ticked box of the agent
    typed in ``add_agent``, and the Add block again, emptied; or with what was typed and why it cannot be added,
    or saying that it is ticked already (``agent_ids``)."""
    typed = request.args.get("add_agent", "")[:2048]
    agent, error, note = None, None, None
    try:
        agent = choices.resolve_choice(choices.AGENTS, typed, "add_agent", existing=True)
    except ValidationError as exc:
        error = exc.message
    if agent and agent.id in request.args.getlist("agent_ids"):
        agent, note = None, f"“{agent.label}” is ticked already."
    return render_template("pickers/_tick.html", agent=agent, add_error=error, add_note=note,
                           agent_picker=picker("agents", "add_agent", typed if error else ""))
