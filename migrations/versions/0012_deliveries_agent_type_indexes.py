"""Deliveries: indexes (tenant_id, agent_id, id) and (tenant_id, event_type, id), for the log's filters

The delivery log and GET /api/v1/deliveries filter by agent and by event type, newest first. Without an index
that leads with either, the newest page walked the tenant's deliveries until it had found a page: at a
million deliveries, an agent or type with none read all of them (SQLite 0.34-0.36 s, PostgreSQL 0.17-0.6 s),
and a rare one most. A delivery's agent and type never change, so the indexes cost a write at its insert
(and at each PostgreSQL update that is not in place), and let PostgreSQL's in-place updates be.

On PostgreSQL they are built CONCURRENTLY, outside the migration's transaction, so ingest goes on writing
deliveries while they are built; an index left invalid by a build that failed is dropped and built again.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 04:00:00

"""
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

INDEXES = {"ix_deliveries_tenant_agent_id": ["tenant_id", "agent_id", "id"],
           "ix_deliveries_tenant_type_id": ["tenant_id", "event_type", "id"]}


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            for name, columns in INDEXES.items():
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
                op.create_index(name, "deliveries", columns, postgresql_concurrently=True)
        return
    for name, columns in INDEXES.items():
        op.create_index(name, "deliveries", columns)


def downgrade():
    for name in INDEXES:
        op.drop_index(name, table_name="deliveries")
