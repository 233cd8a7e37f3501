"""Attempts: their delivery's endpoint_id, and an index (tenant_id, endpoint_id, id) in place of tenant_id's

The dashboard's endpoint health (webapp/services/stats.py) counts an endpoint's attempts of the last
24 hours. Through their deliveries that was a join against every delivery the tenant has: at a million
deliveries, 170-230 ms a page on PostgreSQL and 0.4-3.8 s on SQLite. With the endpoint on the attempt,
each endpoint's recent attempts are one range of the new index. That index begins with tenant_id, so the
index of tenant_id alone goes: every attempt recorded wrote it.

The backfill rewrites every attempt once, in the release phase: 33 s for 1.46 million attempts on
PostgreSQL, 21 s on SQLite (bench/scale.py's history, on the benchmark machine).

Workers still running the code before this revision go on recording attempts without an endpoint_id
until they are replaced, after the release phase. On PostgreSQL a trigger fills it in from the delivery
for them (only for a row that lacks it), so their records are not refused by NOT NULL and their
deliveries not sent again; a later revision can drop it. SQLite's processes are started together
(scripts/run), so old and new code never share one.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 17:30:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_FILL = "attempts_endpoint_of_delivery"  # the trigger and its function


def upgrade():
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('endpoint_id', sa.String(length=40), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""CREATE OR REPLACE FUNCTION {_FILL} () RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                NEW.endpoint_id := (SELECT endpoint_id FROM deliveries WHERE id = NEW.delivery_id);
                RETURN NEW;
            END $$""")
        op.execute(f"CREATE TRIGGER {_FILL} BEFORE INSERT ON attempts FOR EACH ROW "
                   f"WHEN (NEW.endpoint_id IS NULL) EXECUTE FUNCTION {_FILL} ()")
        # A join; the correlated form would look each attempt's delivery up.
        op.execute("UPDATE attempts SET endpoint_id = deliveries.endpoint_id FROM deliveries "
                   "WHERE deliveries.id = attempts.delivery_id")
    else:
        op.execute("UPDATE attempts SET endpoint_id = "
                   "(SELECT endpoint_id FROM deliveries WHERE deliveries.id = attempts.delivery_id)")
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.alter_column('endpoint_id', existing_type=sa.String(length=40), nullable=False)
        batch_op.create_index('ix_attempts_tenant_endpoint_id', ['tenant_id', 'endpoint_id', 'id'], unique=False)
        batch_op.drop_index('ix_attempts_tenant_id')


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {_FILL} ON attempts")
        op.execute(f"DROP FUNCTION {_FILL} ()")
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.create_index('ix_attempts_tenant_id', ['tenant_id'], unique=False)
        batch_op.drop_index('ix_attempts_tenant_endpoint_id')
        batch_op.drop_column('endpoint_id')
