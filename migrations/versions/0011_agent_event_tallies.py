"""agent_event_tallies: each agent's events per clock hour, kept by a trigger, for the agent list

The agent list showed how many events each agent had sent by counting the tenant's events, every one that
retention keeps: 0.6 s at a million events, linear beyond. Now it reads, for each agent on the list, its
tallies of the last 24 hours and its newest tally (when its last event came).

A trigger on events keeps the tallies, whatever inserts the event: the ingest service, the web processes
still running the code before this revision during a PostgreSQL deploy, a bulk loader. On PostgreSQL it is
deferred to the commit, so two ingests of the same agent in the same hour wait for each other's tally only
while the first commits, not while it writes its deliveries.

The backfill tallies every event. So that PostgreSQL's ingest is not held up while it reads them all, it
runs in two parts: first the events received until a minute ago, before the trigger exists; then, once
creating the trigger has locked events against inserts (until this revision commits), the events received
since. An event received more than a minute before it is committed (a stalled transaction) could be missed
by both; nothing is counted twice.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 01:00:00

"""
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_TRIGGER = "agent_event_tallies_of_event"  # the trigger's name, and on PostgreSQL its function's
# The hour of a received_at as each database stores a UTCDateTime: timestamptz on PostgreSQL, text on SQLite.
_HOUR = {"postgresql": "date_trunc('hour', {at} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
         "sqlite": "strftime('%Y-%m-%d %H:00:00.000000', {at})"}
_LATEST = {"postgresql": "greatest", "sqlite": "max"}
_INSERT = "INSERT INTO agent_event_tallies (tenant_id, agent_id, hour, events, last_received_at) "
_ADD = ("ON CONFLICT (tenant_id, agent_id, hour) DO UPDATE SET events = agent_event_tallies.events + excluded.events, "
        "last_received_at = {latest}(agent_event_tallies.last_received_at, excluded.last_received_at)")


def upgrade():
    op.create_table('agent_event_tallies',
                    sa.Column('agent_id', sa.String(length=40), nullable=False),
                    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
                    sa.Column('events', sa.Integer(), nullable=False),
                    sa.Column('last_received_at', sa.DateTime(timezone=True), nullable=False),
                    sa.Column('tenant_id', sa.String(length=40), nullable=False),
                    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('tenant_id', 'agent_id', 'hour'),
                    sqlite_with_rowid=False)
    bind = op.get_bind()
    dialect = bind.dialect.name
    add = _ADD.format(latest=_LATEST[dialect])
    hour = _HOUR[dialect]
    since = datetime.now(timezone.utc) - timedelta(minutes=1)

    def backfill(received: str) -> None:
        bind.execute(sa.text(
            f"{_INSERT} SELECT tenant_id, agent_id, {hour.format(at='received_at')}, count(*), max(received_at) "
            f"FROM events WHERE agent_id IS NOT NULL AND received_at {received} :since "
            f"GROUP BY tenant_id, agent_id, {hour.format(at='received_at')} {add}")
            .bindparams(sa.bindparam("since", since, type_=sa.DateTime(timezone=True))))

    backfill("<")
    row = f"VALUES (NEW.tenant_id, NEW.agent_id, {hour.format(at='NEW.received_at')}, 1, NEW.received_at) {add}"
    if dialect == "postgresql":
        # OR REPLACE, as 0008's and 0010's: a function outlives the tables that a test run's reset drops.
        op.execute(f"""CREATE OR REPLACE FUNCTION {_TRIGGER} () RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {_INSERT} {row};
                RETURN NULL;
            END $$""")
        # A constraint trigger, so that it can be deferred: the tally's row lock is then taken at the commit.
        op.execute(f"CREATE CONSTRAINT TRIGGER {_TRIGGER} AFTER INSERT ON events DEFERRABLE INITIALLY DEFERRED "
                   f"FOR EACH ROW WHEN (NEW.agent_id IS NOT NULL) EXECUTE FUNCTION {_TRIGGER} ()")
    else:
        op.execute(f"CREATE TRIGGER {_TRIGGER} AFTER INSERT ON events WHEN NEW.agent_id IS NOT NULL BEGIN "
                   f"{_INSERT} {row}; END")
    backfill(">=")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {_TRIGGER} ON events")
        op.execute(f"DROP FUNCTION {_TRIGGER} ()")
    else:
        op.execute(f"DROP TRIGGER {_TRIGGER}")
    op.drop_table('agent_event_tallies')
