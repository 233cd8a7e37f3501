"""The Flask subclass's memory of which views and hooks are async (webapp.App.ensure_sync)."""
from __future__ import annotations

import gc
import weakref

import pytest

from webapp import App


def test_sync_callables_run_as_they_are_and_async_ones_still_go_through_flask():
    app = App(__name__)

    def view():
        return "sync"

    async def async_view():
        return "async"

    for _ in range(2):  # the second time from the cache
        assert app.ensure_sync(view) is view
        # Flask runs async views only with its "async" extra, which we do not install: it says so.
        with pytest.raises(RuntimeError, match="async"):
            app.ensure_sync(async_view)


def test_a_callable_made_for_one_request_is_not_kept_alive():
    app = App(__name__)

    def make():
        def per_request():
            return None
        return per_request

    callable_ = make()
    assert app.ensure_sync(callable_) is callable_
    gone = weakref.ref(callable_)
    del callable_
    gc.collect()
    assert gone() is None
