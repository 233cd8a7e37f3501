"""delivery_tallies: each endpoint's deliveries per hour of their creation and status, for the overview's chart

The overview's chart counted each hour's deliveries by status in the index (tenant_id, status, id): linear
in a day's deliveries, 0.8 s on PostgreSQL at a million a day. webapp/services/tallies.py now counts each
delivery past pending (retrying, succeeded or failed) under the hour its id was made and its status, in
the transaction that changes its status; the chart reads those, and counts only the pending ones (not
attempted yet) in the index.

The backfill tallies the deliveries past pending of the last 48 hours (what retention keeps of the tallies),
an hour's range of ids at a time through the primary key. Workers still running the code before this
revision change deliveries' statuses without counting them until they are replaced, after the release phase: those
few seconds' deliveries are missing from the chart's bars, for the next 24 hours. Nothing else reads
these tallies.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 06:00:00

"""
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

from webapp.ids import min_id_at


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

HOURS = 48  # tallies.KEPT


def upgrade():
    op.create_table('delivery_tallies',
                    sa.Column('endpoint_id', sa.String(length=40), nullable=False),
                    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
                    sa.Column('status', sa.String(length=16), nullable=False),
                    sa.Column('deliveries', sa.Integer(), nullable=False),
                    sa.Column('tenant_id', sa.String(length=40), nullable=False),
                    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('tenant_id', 'endpoint_id', 'hour', 'status'),
                    sqlite_with_rowid=False)
    bind = op.get_bind()
    statement = sa.text(
        "INSERT INTO delivery_tallies (tenant_id, endpoint_id, hour, status, deliveries) "
        "SELECT tenant_id, endpoint_id, :hour, status, count(*) FROM deliveries "
        "WHERE id >= :start AND id < :end AND status IN ('retrying', 'succeeded', 'failed') "
        "GROUP BY tenant_id, endpoint_id, status"
    ).bindparams(sa.bindparam("hour", type_=sa.DateTime(timezone=True)))
    this_hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    for back in range(HOURS, -1, -1):  # the hour before KEPT's first too: prune() takes it later
        hour = this_hour - timedelta(hours=back)
        # (UTC: SQLite stores it as text without its zone, as the application's UTCDateTime does.)
        bind.execute(statement, {"hour": hour, "start": min_id_at("dlv", hour),
                                 "end": min_id_at("dlv", hour + timedelta(hours=1))})


def downgrade():
    op.drop_table('delivery_tallies')
