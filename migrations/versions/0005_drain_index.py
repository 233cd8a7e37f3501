"""Deliveries: an index for a drain's claim (a tenant's due deliveries, earliest first)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 07:45:00

"""
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_tenant_due', ['tenant_id', 'next_attempt_at'], unique=False)


def downgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_tenant_due')
