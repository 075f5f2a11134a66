"""voice records by age: the retention purge finds the oldest agent legs and voice instructions

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 16:00:00

Agent legs and voice instructions are deleted once their reservation is gone and they are older than
the retention (callcenter/voice/retention.py), oldest first. Without these indexes each purge would
read the whole table inside a write transaction.
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0010'
down_revision: Union[str, Sequence[str], None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

INDEXES = (('ix_voice_agent_legs_date_created', 'voice_agent_legs'),
           ('ix_voice_instructions_date_created', 'voice_instructions'))


def upgrade() -> None:
    context = op.get_context()
    for name, table in INDEXES:
        if context.dialect.name == "postgresql":
            # Built without blocking writers, as in 0009; an invalid index a failed build left is built again.
            with context.autocommit_block():
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
                op.create_index(name, table, ['date_created'], unique=False, postgresql_concurrently=True)
        else:
            op.create_index(name, table, ['date_created'], unique=False)


def downgrade() -> None:
    for name, table in INDEXES:
        op.drop_index(name, table_name=table)
