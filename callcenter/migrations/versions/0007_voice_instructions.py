"""voice instructions (dequeue, call, redirect, conference) carried out for a reservation

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 17:30:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('voice_instructions',
    sa.Column('reservation_sid', sa.String(length=34), nullable=False),
    sa.Column('workspace_sid', sa.String(length=34), nullable=False),
    sa.Column('task_sid', sa.String(length=34), nullable=False),
    sa.Column('worker_sid', sa.String(length=34), nullable=False),
    sa.Column('instruction', sa.String(length=16), nullable=False),
    sa.Column('params', sa.Text(), nullable=False),
    sa.Column('caller_call_sid', sa.String(length=34), nullable=True),
    sa.Column('worker_call_sid', sa.String(length=34), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('date_created', sa.DateTime(), nullable=False),
    sa.Column('date_updated', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('reservation_sid', name=op.f('pk_voice_instructions'))
    )


def downgrade() -> None:
    op.drop_table('voice_instructions')
