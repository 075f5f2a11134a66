"""web sign-in sessions kept on the server, and running totals of reservations for /metrics

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 17:49:20

`web_sessions`: one row per sign-in (the cookie holds a token whose hash is stored), so signing out
ends a copied cookie too. `reservation_counts` and `event_cursors`: /metrics adds only the events
written since its last scrape, instead of counting every reservation event ever written.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('event_cursors',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('last_event_id', sa.BigInteger(), nullable=False),
    sa.Column('date_updated', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_event_cursors'))
    )
    op.create_table('reservation_counts',
    sa.Column('workspace_sid', sa.String(length=34), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("outcome IN ('created', 'accepted', 'rejected', 'timeout', 'canceled', 'rescinded', 'completed', 'wrapup', 'failed')", name=op.f('ck_reservation_counts_outcome')),
    sa.ForeignKeyConstraint(['workspace_sid'], ['workspaces.sid'], name=op.f('fk_reservation_counts_workspace_sid_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_sid', 'outcome', name=op.f('pk_reservation_counts'))
    )
    op.create_table('web_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('date_created', sa.DateTime(), nullable=False),
    sa.Column('last_seen', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['web_users.id'], name=op.f('fk_web_sessions_user_id_web_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_web_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_web_sessions_token_hash'))
    )
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_sessions_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_sessions_user_id'))

    op.drop_table('web_sessions')
    op.drop_table('reservation_counts')
    op.drop_table('event_cursors')
