"""waiting tasks by queue and channel: ix_tasks_waiting_order gains task_channel_sid

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 15:45:00

A worker with room on one channel only (busy on voice, free for chat) read every waiting task of
their queues to find one on that channel; with the channel second in the index each (queue,
channel) pair is read straight off it, in FIFO order.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

WAITING = "assignment_status IN ('pending', 'reserved')"


def upgrade() -> None:
    op.drop_index('ix_tasks_waiting_order', table_name='tasks')
    op.create_index('ix_tasks_waiting_order', 'tasks',
                    ['task_queue_sid', 'task_channel_sid', sa.text('priority DESC'), 'virtual_start_time', 'sid'],
                    unique=False, sqlite_where=sa.text(WAITING), postgresql_where=sa.text(WAITING))


def downgrade() -> None:
    op.drop_index('ix_tasks_waiting_order', table_name='tasks')
    op.create_index('ix_tasks_waiting_order', 'tasks',
                    ['task_queue_sid', sa.text('priority DESC'), 'virtual_start_time', 'sid'],
                    unique=False, sqlite_where=sa.text(WAITING), postgresql_where=sa.text(WAITING))
