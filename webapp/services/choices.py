"""Finding one of the tenant's agents or endpoints by what a person types: its id, or its name (an endpoint's
URL). The dashboard's pickers use it: a tenant with a thousand agents cannot be shown them all in a list.

Names and URLs are not unique, so a search shows each match with its id, and a typed name stands for an agent
only when exactly one agent has it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import func, or_, select

from ..extensions import db
from ..models import Agent, Endpoint
from .common import ValidationError

SUGGESTIONS = 20  # matches a search returns: enough to pick from, few enough to read


class Choice(NamedTuple):
    id: str
    label: str | None  # an agent's name, an endpoint's URL (None: an id that is none of the tenant's)


@dataclass(frozen=True)
class Kind:
    """What can be chosen, and by which column people know it."""

    model: type
    label_column: str
    noun: str  # "agent"
    label_noun: str  # "name"
    id_prefix: str

    @property
    def label(self):
        return getattr(self.model, self.label_column)

    def query(self):
        return select(self.model.id, self.label).order_by(self.label, self.model.id)


AGENTS = Kind(Agent, "name", "agent", "name", "agt_")
ENDPOINTS = Kind(Endpoint, "url", "endpoint", "URL", "ep_")
KINDS = {"agents": AGENTS, "endpoints": ENDPOINTS}


def _choices(statement) -> list[Choice]:
    return [Choice(*row) for row in db.session.execute(statement)]


def first(kind: Kind, limit: int) -> list[Choice]:
    """The first ``limit`` in label order: all of them when there are fewer (a picker asks for one more
    than it lists, to know whether it may list them all)."""
    return _choices(kind.query().limit(limit))


def search(kind: Kind, text: str, limit: int = SUGGESTIONS) -> list[Choice]:
    """Those whose id is ``text`` or whose label contains it, ignoring case, in label order."""
    text = text.strip()
    if not text:
        return first(kind, limit)
    return _choices(kind.query().where(or_(kind.model.id == text, kind.label.icontains(text, autoescape=True)))
                    .limit(limit))


def label_of(kind: Kind, choice_id: str | None) -> str | None:
    """The label of the tenant's choice with this id; None when there is none (a deleted agent, say)."""
    rows = _choices(kind.query().where(kind.model.id == choice_id)) if choice_id else []
    return rows[0].label if rows else None


def resolve(kind: Kind, text: str | None, field: str, *, existing: bool = False) -> str | None:
    """The id that what was typed stands for: an id of the tenant's, or the label of exactly one (ignoring case),
    or what contains it if only one does. Text shaped like an id that is none of the tenant's stands as typed
    (the deliveries of a deleted agent keep its id), unless ``existing`` asks for one that exists.

    Raises:
        ValidationError: naming ``field``, when no choice or several match; the message says which.
    """
    choice = resolve_choice(kind, text, field, existing=existing)
    return choice.id if choice else None


def resolve_choice(kind: Kind, text: str | None, field: str, *, existing: bool = False) -> Choice | None:
    """As ``resolve``, with the label found on the way (None for an id that stands as typed)."""
    text = (text or "").strip()
    if not text:
        return None
    by_id = _choices(kind.query().where(kind.model.id == text))  # our own links name ids: one look-up by the key
    if by_id:
        return by_id[0]
    # As typed, or ignoring case (SQLite's lower() folds ASCII only, so the first catches the rest there).
    exact = _choices(kind.query().where(or_(kind.label == text, func.lower(kind.label) == text.lower()))
                     .limit(SUGGESTIONS + 1))
    matches = exact or search(kind, text, limit=SUGGESTIONS + 1)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        if text.startswith(kind.id_prefix):
            if existing:
                raise ValidationError(field, f"No {kind.noun} of yours has the id {text!r}.")
            return Choice(text, None)
        raise ValidationError(field, f"No {kind.noun}'s {kind.label_noun} contains {text!r}.")
    many = f"More than {SUGGESTIONS}" if len(matches) > SUGGESTIONS else str(len(matches))
    which = (f"{many} {kind.noun}s have the {kind.label_noun} {text!r}" if exact
             else f"{many} {kind.noun}s' {kind.label_noun}s contain {text!r}")
    raise ValidationError(field, f"{which}: pick one from the suggestions, which show each one's id.")
