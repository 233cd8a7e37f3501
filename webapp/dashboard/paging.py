"""Dashboard lists paged by keyset cursor (the endpoints, the agents, the API keys): the page the query string
asks for, and the links to the first and the next page."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import abort, flash, redirect, request, url_for

from ..services.common import ValidationError


@dataclass(frozen=True)
class Page:
    rows: list
    first_url: str | None  # None on the first page
    next_url: str | None  # None on the last


def keyset_page(fetch: Callable, view: str, limit: int, gone: str) -> Page:
    """The page of ``fetch(cursor, limit=limit)`` (rows and the next page's cursor) that the request's
    ``cursor`` names, with links to the list's pages at ``view``. A cursor that is not ours, or a page emptied
    since, redirects to the first page with the message ``gone`` (raised, so the view goes no further)."""
    cursor = request.args.get("cursor") or None
    try:
        rows, next_cursor = fetch(cursor, limit=limit)
    except ValidationError:
        rows = []
    if cursor and not rows:
        flash(gone, "error")
        abort(redirect(url_for(view)))
    return Page(rows, url_for(view) if cursor else None,
                url_for(view, cursor=next_cursor) if next_cursor else None)
