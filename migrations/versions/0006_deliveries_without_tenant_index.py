"""Deliveries: drop the index of tenant_id alone (ix_deliveries_tenant_id_id serves its lookups)

Every delivery stored and every attempt recorded wrote it, and no query needs it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 22:40:00

"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_tenant_id')


def downgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_tenant_id', ['tenant_id'], unique=False)
