"""Voice calls and agent legs; timers of any kind an application registers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('voice_agent_legs',
    sa.Column('call_sid', sa.String(length=34), nullable=False),
    sa.Column('reservation_sid', sa.String(length=34), nullable=False),
    sa.Column('task_sid', sa.String(length=34), nullable=False),
    sa.Column('worker_sid', sa.String(length=34), nullable=False),
    sa.Column('workspace_sid', sa.String(length=34), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('date_created', sa.DateTime(), nullable=False),
    sa.Column('date_updated', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('call_sid', name=op.f('pk_voice_agent_legs')),
    sa.UniqueConstraint('reservation_sid', name=op.f('uq_voice_agent_legs_reservation_sid'))
    )
    with op.batch_alter_table('voice_agent_legs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_voice_agent_legs_task_sid'), ['task_sid'], unique=False)

    op.create_table('voice_calls',
    sa.Column('call_sid', sa.String(length=34), nullable=False),
    sa.Column('workspace_sid', sa.String(length=34), nullable=False),
    sa.Column('task_sid', sa.String(length=34), nullable=True),
    sa.Column('from_number', sa.String(length=64), nullable=False),
    sa.Column('to_number', sa.String(length=64), nullable=False),
    sa.Column('choices', sa.Text(), nullable=False),
    sa.Column('queue_sid', sa.String(length=34), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('worker_sid', sa.String(length=34), nullable=True),
    sa.Column('date_created', sa.DateTime(), nullable=False),
    sa.Column('date_enqueued', sa.DateTime(), nullable=True),
    sa.Column('date_answered', sa.DateTime(), nullable=True),
    sa.Column('date_ended', sa.DateTime(), nullable=True),
    sa.Column('recording_url', sa.Text(), nullable=True),
    sa.Column('recording_sid', sa.String(length=34), nullable=True),
    sa.Column('recording_duration', sa.Integer(), nullable=True),
    sa.Column('transcription', sa.Text(), nullable=True),
    sa.Column('supervisors_notified', sa.Boolean(), nullable=False),
    sa.Column('wrap_up_activity_sid', sa.String(length=34), nullable=True),
    sa.Column('after_wrap_up_activity_sid', sa.String(length=34), nullable=True),
    sa.PrimaryKeyConstraint('call_sid', name=op.f('pk_voice_calls')),
    sa.UniqueConstraint('task_sid', name=op.f('uq_voice_calls_task_sid'))
    )
    with op.batch_alter_table('voice_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_voice_calls_date_created'), ['date_created'], unique=False)
        batch_op.create_index(batch_op.f('ix_voice_calls_outcome'), ['outcome'], unique=False)
        batch_op.create_index(batch_op.f('ix_voice_calls_workspace_sid'), ['workspace_sid'], unique=False)

    # Applications register timer kinds of their own (the voice app's wrap-up end).
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_timers_kind'), type_='check')


def downgrade() -> None:
    """Downgrade schema."""
    op.execute("DELETE FROM timers WHERE kind NOT IN ('reservation_timeout', 'target_timeout', 'task_ttl', "
               "'task_cleanup', 'assigned_max_age')")
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.create_check_constraint(
            'kind', "kind IN ('reservation_timeout', 'target_timeout', 'task_ttl', 'task_cleanup', 'assigned_max_age')")
    with op.batch_alter_table('voice_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_voice_calls_workspace_sid'))
        batch_op.drop_index(batch_op.f('ix_voice_calls_outcome'))
        batch_op.drop_index(batch_op.f('ix_voice_calls_date_created'))

    op.drop_table('voice_calls')
    with op.batch_alter_table('voice_agent_legs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_voice_agent_legs_task_sid'))

    op.drop_table('voice_agent_legs')
