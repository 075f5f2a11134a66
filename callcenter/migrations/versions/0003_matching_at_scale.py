"""matching at scale: offline workers out of the longest-idle index; waiting tasks in queue order

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 15:05:00

worker_channels.worker_available (a copy of workers.available) joins the longest-idle index, so
matching no longer walks past every offline worker; ix_reservations_task_worker finds "an offer
of this task to this worker" with one probe; ix_tasks_waiting_order (partial: waiting tasks
only) gives each queue's waiting tasks in FIFO order, so a worker becoming available reads the head
of their queues instead of sorting their whole backlog.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

WAITING = "assignment_status IN ('pending', 'reserved')"


def upgrade() -> None:
    with op.batch_alter_table('worker_channels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker_available', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.drop_index('ix_worker_channels_channel_idle')
        batch_op.create_index('ix_worker_channels_channel_available_idle',
                              ['task_channel_sid', 'worker_available', 'idle_since'], unique=False)
    op.execute("UPDATE worker_channels SET worker_available = "
               "(SELECT workers.available FROM workers WHERE workers.sid = worker_channels.worker_sid)")
    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.drop_index('ix_reservations_task')
        batch_op.create_index('ix_reservations_task_worker', ['task_sid', 'worker_sid', 'reservation_status'],
                              unique=False)
    op.create_index('ix_tasks_waiting_order', 'tasks',
                    ['task_queue_sid', sa.text('priority DESC'), 'virtual_start_time', 'sid'], unique=False,
                    sqlite_where=sa.text(WAITING), postgresql_where=sa.text(WAITING))


def downgrade() -> None:
    op.drop_index('ix_tasks_waiting_order', table_name='tasks')
    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.drop_index('ix_reservations_task_worker')
        batch_op.create_index('ix_reservations_task', ['task_sid', 'reservation_status'], unique=False)
    with op.batch_alter_table('worker_channels', schema=None) as batch_op:
        batch_op.drop_index('ix_worker_channels_channel_available_idle')
        batch_op.create_index('ix_worker_channels_channel_idle', ['task_channel_sid', 'idle_since'], unique=False)
        batch_op.drop_column('worker_available')
