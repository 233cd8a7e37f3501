"""Tenant scoping: the one place that decides which tenant's rows a query may see.

Every tenant-owned model inherits ``TenantMixin``. A ``do_orm_execute`` listener adds
``tenant_id = <current tenant>`` to every ORM SELECT, UPDATE and DELETE that touches such
a model (SQLAlchemy's ``with_loader_criteria`` recipe), and refuses to run one when no
tenant is set. The few Core statements on tenant tables, on hot paths that skip the ORM for
speed, filter by tenant themselves, with the tenant as a bound parameter: ingest's lookups
(services/events.py) and the drain's claim (jobs/drain.py). New rows get the current tenant,
and a flush that would write a row of another tenant is refused. Code that must look across
tenants (log-in by email, the delivery sweep) says so explicitly with ``all_tenants()``; the
API-key lookup, which is what tells the tenant, is a Core statement by the key's hash.
"""
from __future__ import annotations

import contextlib
import functools
from contextvars import ContextVar

from sqlalchemy import ForeignKey, String, event
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column, with_loader_criteria
from sqlalchemy.sql.util import find_tables

_tenant: ContextVar[str | None] = ContextVar("tenant", default=None)
_unscoped: ContextVar[bool] = ContextVar("unscoped", default=False)

ALL_TENANTS = "all_tenants"


class TenantNotSet(RuntimeError):
    """A tenant-owned table was queried with no tenant in scope."""


class TenantMixin:
    """Columns and scoping shared by every row that belongs to a tenant."""

    # A table whose own indexes all begin with tenant_id sets this False: an index of tenant_id alone would
    # add nothing to their lookups and cost every insert and update.
    tenant_id_index = True

    @declared_attr
    def tenant_id(cls) -> Mapped[str]:
        return mapped_column(String(40), ForeignKey("tenants.id", ondelete="CASCADE"),
                             nullable=False, index=cls.tenant_id_index, default=require_tenant)


def current_tenant_id() -> str | None:
    return _tenant.get()


def require_tenant() -> str:
    tenant_id = _tenant.get()
    if tenant_id is None:
        raise TenantNotSet("no tenant is set for this unit of work")
    return tenant_id


@contextlib.contextmanager
def tenant_scope(tenant_id: str):
    """Run the block as ``tenant_id``: every query sees only that tenant's rows."""
    token = _tenant.set(tenant_id)
    try:
        yield
    finally:
        _tenant.reset(token)


def set_tenant(tenant_id: str | None):
    """Set the tenant for the rest of this context; returns a token for ``reset_tenant``."""
    return _tenant.set(tenant_id)


def reset_tenant(token) -> None:
    _tenant.reset(token)


@contextlib.contextmanager
def all_tenants():
    """Let the block query across tenants. Use only where no tenant can be known yet."""
    token = _unscoped.set(True)
    try:
        yield
    finally:
        _unscoped.reset(token)


def _touches_tenant_rows(state) -> bool:
    if any(issubclass(m.class_, TenantMixin) for m in state.all_mappers):
        return True
    if not state.is_orm_statement:
        return False  # Core, on tables: it filters by tenant itself (see above)
    # An ORM statement that names no entity among its columns, such as select(func.count()).select_from(Agent),
    # has no mapper at its top level: the tables it names anywhere tell whose rows it reads. (A walk of the
    # statement, 20-40 µs; get_final_froms() builds the ORM's compile state, 0.2-1.4 ms a statement.)
    tenant_tables = _tenant_tables()
    return any(table in tenant_tables for table in find_tables(state.statement, check_columns=True, include_joins=True))


@functools.cache
def _tenant_tables() -> frozenset:
    from .extensions import db

    return frozenset(mapper.local_table for mapper in db.Model.registry.mappers if issubclass(mapper.class_, TenantMixin))


@event.listens_for(Session, "do_orm_execute")
def _scope_to_tenant(state) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return  # the parent query's criteria already propagate to these loads
    if _unscoped.get() or state.execution_options.get(ALL_TENANTS):
        return
    if not _touches_tenant_rows(state):
        return
    tenant_id = require_tenant()
    state.statement = state.statement.options(
        with_loader_criteria(TenantMixin, lambda cls: cls.tenant_id == tenant_id, include_aliases=True)
    )


@event.listens_for(Session, "before_flush")
def _refuse_foreign_rows(session, flush_context, instances) -> None:
    if _unscoped.get():
        return
    tenant_id = _tenant.get()
    for obj in list(session.new) + list(session.dirty):
        if isinstance(obj, TenantMixin) and obj.tenant_id is not None and obj.tenant_id != tenant_id:
            raise TenantNotSet(f"refusing to write a row of tenant {obj.tenant_id} as tenant {tenant_id}")
