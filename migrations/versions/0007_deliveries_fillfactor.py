"""Deliveries: leave 30 % of each page free on PostgreSQL, for in-place (HOT) updates of a claim

A drain's claim sets only lease_until, which no index holds: with room on the row's page, PostgreSQL
writes the new row version there and adds no index entries (the table has nine indexes). New pages
get the room; existing ones keep theirs until rewritten. SQLite has no such setting.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 18:15:00

"""
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries SET (fillfactor = 70)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries RESET (fillfactor)")
