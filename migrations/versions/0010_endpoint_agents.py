"""endpoint_agents: whose events each endpoint takes, kept by triggers, for ingest's lookup by agent

Ingest read every enabled endpoint of the tenant with the event's agent and kept those whose filters take
the event, in Python. A tenant with an endpoint per agent (one per customer, say) paid for all of them on
every event: with 1,000 other agents' endpoints, an ingest cost about 8 times what it cost alone. Now it
reads, through this table's primary key, only the endpoints whose agent filter names the event's agent or
that have none (agent_id '*', models.ALL_AGENTS).

Triggers on endpoints keep the rows as agent_ids is written, whatever writes it: the services, the web
processes still running the code before this revision during a PostgreSQL deploy, a bulk loader. So an
endpoint never misses an event because its rows were not written. The backfill is one statement over the
endpoints, with the same SQL as the triggers.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 22:00:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_TRIGGER = "endpoint_agents_of_endpoint"  # the triggers' name (and on PostgreSQL their function's)

# The rows of the endpoints that satisfy {where}: one per agent named in agent_ids, or '*' for a filter that
# names none (an empty list or a JSON null, which Python's "not agent_ids" reads as all; the API stores only
# lists, and anything else that is not a list counts as all too).
_ROWS = {
    "sqlite": """
        SELECT endpoints.tenant_id, agent.value, endpoints.id FROM endpoints, json_each(endpoints.agent_ids) AS agent
        WHERE {where} AND json_type(endpoints.agent_ids) = 'array' AND agent.value IS NOT NULL
        UNION
        SELECT tenant_id, '*', id FROM endpoints WHERE {where} AND coalesce(json_array_length(agent_ids), 0) = 0""",
    "postgresql": """
        SELECT endpoints.tenant_id, agent, endpoints.id FROM endpoints CROSS JOIN LATERAL json_array_elements_text(
            CASE WHEN json_typeof(endpoints.agent_ids) = 'array' THEN endpoints.agent_ids ELSE '[]' END) AS agent
        WHERE {where} AND agent IS NOT NULL
        UNION
        SELECT tenant_id, '*', id FROM endpoints WHERE {where}
            AND CASE WHEN json_typeof(agent_ids) = 'array' THEN json_array_length(agent_ids) = 0 ELSE true END""",
}
_INSERT = "INSERT INTO endpoint_agents (tenant_id, agent_id, endpoint_id) "


def upgrade():
    op.create_table('endpoint_agents',
                    sa.Column('agent_id', sa.String(length=40), nullable=False),
                    sa.Column('endpoint_id', sa.String(length=40), nullable=False),
                    sa.Column('tenant_id', sa.String(length=40), nullable=False),
                    sa.ForeignKeyConstraint(['endpoint_id'], ['endpoints.id'], ondelete='CASCADE'),
                    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('tenant_id', 'agent_id', 'endpoint_id'),
                    sqlite_with_rowid=False)
    # For the endpoint's cascade and the update trigger's delete.
    op.create_index('ix_endpoint_agents_endpoint_id', 'endpoint_agents', ['endpoint_id'], unique=False)
    dialect = op.get_bind().dialect.name
    rows = _ROWS[dialect]
    if dialect == "postgresql":
        # OR REPLACE, as 0008's: a function outlives the tables that a test run's reset drops.
        op.execute(f"""CREATE OR REPLACE FUNCTION {_TRIGGER} () RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'UPDATE' THEN
                    DELETE FROM endpoint_agents WHERE endpoint_id = OLD.id;
                END IF;
                {_INSERT} {rows.format(where="endpoints.id = NEW.id")};
                RETURN NULL;
            END $$""")
        op.execute(f"CREATE TRIGGER {_TRIGGER} AFTER INSERT OR UPDATE OF agent_ids ON endpoints "
                   f"FOR EACH ROW EXECUTE FUNCTION {_TRIGGER} ()")
    else:
        op.execute(f"CREATE TRIGGER {_TRIGGER}_insert AFTER INSERT ON endpoints BEGIN "
                   f"{_INSERT} {rows.format(where='endpoints.id = NEW.id')}; END")
        op.execute(f"CREATE TRIGGER {_TRIGGER}_update AFTER UPDATE OF agent_ids ON endpoints BEGIN "
                   f"DELETE FROM endpoint_agents WHERE endpoint_id = OLD.id; "
                   f"{_INSERT} {rows.format(where='endpoints.id = NEW.id')}; END")
    op.execute(_INSERT + rows.format(where="true"))


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {_TRIGGER} ON endpoints")
        op.execute(f"DROP FUNCTION {_TRIGGER} ()")
    else:
        op.execute(f"DROP TRIGGER {_TRIGGER}_insert")
        op.execute(f"DROP TRIGGER {_TRIGGER}_update")
    op.drop_index('ix_endpoint_agents_endpoint_id', table_name='endpoint_agents')
    op.drop_table('endpoint_agents')
