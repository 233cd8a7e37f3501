"""attempt_totals: each endpoint's attempts and successes per clock hour, for the overview's ranking

The overview ranks every endpoint by its attempts over 24 hours and sums their successes. It read those from
attempt_tallies, which keep a row per endpoint, hour and rounded duration: at a thousand endpoints and a
million deliveries a day, a million rows and 1.2 s on PostgreSQL. webapp/services/tallies.py now also
counts each stored attempt in its endpoint's hour here too, in the same transaction. Attempt counts and success
rates are read from these; the p95 durations from the tallies, of the endpoints a page shows (ten on the overview).

The backfill sums attempt_tallies (48 hours, as retention keeps them) by endpoint and hour, in one
statement. Workers still running the code before this revision tally attempts without totalling them until
they are replaced, after the release phase: those few seconds' attempts are missing from the attempt counts
and success rates for the next 24 hours (not from the p95 durations).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 09:00:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('attempt_totals',
                    sa.Column('endpoint_id', sa.String(length=40), nullable=False),
                    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
                    sa.Column('attempts', sa.Integer(), nullable=False),
                    sa.Column('successes', sa.Integer(), nullable=False),
                    sa.Column('tenant_id', sa.String(length=40), nullable=False),
                    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('tenant_id', 'endpoint_id', 'hour'),
                    sqlite_with_rowid=False)
    op.execute("INSERT INTO attempt_totals (tenant_id, endpoint_id, hour, attempts, successes) "
               "SELECT tenant_id, endpoint_id, hour, sum(attempts), sum(successes) FROM attempt_tallies "
               "GROUP BY tenant_id, endpoint_id, hour")


def downgrade():
    op.drop_table('attempt_totals')
