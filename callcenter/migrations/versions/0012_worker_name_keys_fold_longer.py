"""worker name keys fold longer: workers.name_key holds the case-folded form of any 64-character name

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 10:00:00

A worker's name is unique without regard to case through its case-folded copy, `name_key`, which
was as long as the name (64). Folding lengthens some names ("ß" folds to "ss", "ﬃ" to "ffi": at most
three characters for one), so a valid 64-character name was refused. 192 holds every fold.

PostgreSQL widens a VARCHAR in place, without rewriting the table or its unique index. SQLite does
not enforce the length but records it, and cannot alter a column: the batch rebuilds `workers` (copy,
drop, rename), with foreign keys unenforced as on every connection Alembic opens, so the rows that
reference workers stay.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0012'
down_revision: Union[str, Sequence[str], None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.alter_column('name_key', existing_type=sa.String(length=64), type_=sa.String(length=192),
                              existing_nullable=False)


def downgrade() -> None:
    # Refused by PostgreSQL once a worker's folded name is longer than 64: rename that worker first.
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.alter_column('name_key', existing_type=sa.String(length=192), type_=sa.String(length=64),
                              existing_nullable=False)
