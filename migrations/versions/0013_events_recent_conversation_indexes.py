"""Events: partial indexes (tenant_id, id) of the events that have a conversation, and of those that have a run

The conversations page lists the latest conversations and runs among the newest 2,000 events that have one.
It found them by walking the tenant's events newest first and stepping over those without: a tenant that never
sent a run_id had all its events read on every view (326 ms at a million events on SQLite). These indexes hold
only the events that have one, in the order the page reads them; an event without either writes neither.

On PostgreSQL they are built CONCURRENTLY, outside the migration's transaction, so ingest goes on while they
are built; an index left invalid by a build that failed is dropped and built again.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 04:30:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

INDEXES = {"ix_events_tenant_id_with_conversation": "conversation_id", "ix_events_tenant_id_with_run": "run_id"}


def upgrade():
    concurrently = op.get_bind().dialect.name == "postgresql"
    for name, column in INDEXES.items():
        where = sa.text(f"{column} IS NOT NULL")
        if concurrently:
            with op.get_context().autocommit_block():
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
                op.create_index(name, "events", ["tenant_id", "id"], postgresql_where=where,
                                postgresql_concurrently=True)
        else:
            op.create_index(name, "events", ["tenant_id", "id"], sqlite_where=where)


def downgrade():
    for name in INDEXES:
        op.drop_index(name, table_name="events")
