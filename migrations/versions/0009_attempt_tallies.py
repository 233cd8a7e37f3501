"""attempt_tallies: each endpoint's attempts per clock hour and rounded duration, for endpoint health

The dashboard's endpoint health (success rate and p95 over 24 hours) read every attempt of the day: linear
in a day's attempts. webapp/services/tallies.py now counts each stored attempt in its tally (tenant,
endpoint, hour, duration rounded up to two significant figures), in the transaction that stores it, and
the dashboard reads those.

The backfill tallies the attempts of the last 48 hours (what retention keeps of the tallies), with the
rounding and success rule of webapp/services/tallies.py written in SQL, in one statement through the
attempts' started_at index: for 1.46 million such attempts, `flask db upgrade` took 5-8 s on either
database (bench/RESULTS.md). Workers still running the code before this revision store attempts without
tallying them until they are replaced, after the release phase: those few seconds' attempts are missing
from endpoint health for the next 24 hours. Nothing else reads the tallies.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 20:00:00

"""
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# tallies.rounded_up: up to 100 ms as it is, then up to the next multiple of a tenth of its power of ten.
_ROUNDED_UP = "CASE WHEN duration_ms <= 100 THEN duration_ms " + " ".join(
    f"WHEN duration_ms <= {10 ** (digits + 1)} THEN (duration_ms + {10 ** (digits - 1) - 1}) / {10 ** (digits - 1)} "
    f"* {10 ** (digits - 1)}" for digits in range(2, 10)) + " END"
_SUCCEEDED = "CASE WHEN error IS NULL AND response_status BETWEEN 200 AND 299 THEN 1 ELSE 0 END"
# The hour as each database stores a UTCDateTime: timestamptz on PostgreSQL, text on SQLite.
_HOUR = {"postgresql": "date_trunc('hour', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
         "sqlite": "strftime('%Y-%m-%d %H:00:00.000000', started_at)"}


def upgrade():
    op.create_table('attempt_tallies',
                    sa.Column('endpoint_id', sa.String(length=40), nullable=False),
                    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
                    sa.Column('up_to_ms', sa.Integer(), nullable=False),
                    sa.Column('attempts', sa.Integer(), nullable=False),
                    sa.Column('successes', sa.Integer(), nullable=False),
                    sa.Column('tenant_id', sa.String(length=40), nullable=False),
                    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('tenant_id', 'endpoint_id', 'hour', 'up_to_ms'),
                    sqlite_with_rowid=False)
    bind = op.get_bind()
    hour = _HOUR[bind.dialect.name]
    since = (datetime.now(timezone.utc) - timedelta(hours=48)).replace(minute=0, second=0, microsecond=0)
    # Through the attempts' started_at index (since: UTC, which SQLite stores as text without its zone).
    bind.execute(sa.text(
        f"INSERT INTO attempt_tallies (tenant_id, endpoint_id, hour, up_to_ms, attempts, successes) "
        f"SELECT tenant_id, endpoint_id, {hour}, {_ROUNDED_UP}, count(*), sum({_SUCCEEDED}) FROM attempts "
        f"WHERE started_at >= :since GROUP BY tenant_id, endpoint_id, {hour}, {_ROUNDED_UP}")
        .bindparams(sa.bindparam("since", since, type_=sa.DateTime(timezone=True))))


def downgrade():
    op.drop_table('attempt_tallies')
