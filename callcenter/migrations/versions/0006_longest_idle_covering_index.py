"""longest idle per channel: ix_worker_channels_idle holds every column the candidate query reads

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 17:20:00

Matching walks worker channels longest idle first and probes queue membership for each. Workers of
other queues who have been idle longest were each a table row fetch (and a reservations subquery)
before they could be skipped; with the filter's columns in the index each costs one probe.
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index('ix_worker_channels_idle', 'worker_channels',
                    ['task_channel_sid', 'worker_available', 'idle_since', 'worker_sid', 'available',
                     'reserved_tasks', 'capacity'], unique=False)
    op.drop_index('ix_worker_channels_channel_available_idle', table_name='worker_channels')


def downgrade() -> None:
    op.create_index('ix_worker_channels_channel_available_idle', 'worker_channels',
                    ['task_channel_sid', 'worker_available', 'idle_since'], unique=False)
    op.drop_index('ix_worker_channels_idle', table_name='worker_channels')
