"""Texts already acted on (a retried MessageSid changes nothing) and the web pages' users.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('sms_messages',
    sa.Column('message_sid', sa.String(length=34), nullable=False),
    sa.Column('workspace_sid', sa.String(length=34), nullable=False),
    sa.Column('worker_sid', sa.String(length=34), nullable=False),
    sa.Column('body', sa.String(length=160), nullable=False),
    sa.Column('reply', sa.Text(), nullable=False),
    sa.Column('date_created', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('message_sid', name=op.f('pk_sms_messages'))
    )
    with op.batch_alter_table('sms_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sms_messages_date_created'), ['date_created'], unique=False)

    op.create_table('web_users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('worker_sid', sa.String(length=34), nullable=True),
    sa.Column('date_created', sa.DateTime(), nullable=False),
    sa.Column('date_updated', sa.DateTime(), nullable=False),
    sa.CheckConstraint("role = 'supervisor' OR worker_sid IS NOT NULL", name=op.f('ck_web_users_agent_has_worker')),
    sa.CheckConstraint("role IN ('agent', 'supervisor')", name=op.f('ck_web_users_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_web_users')),
    sa.UniqueConstraint('username', name=op.f('uq_web_users_username')),
    sa.UniqueConstraint('worker_sid', name=op.f('uq_web_users_worker_sid'))
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('web_users')
    with op.batch_alter_table('sms_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sms_messages_date_created'))

    op.drop_table('sms_messages')
