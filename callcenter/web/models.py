"""Who may sign in to the agent console and the supervisor dashboard."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.routing.models import SID, Base

ROLES = ("agent", "supervisor")


class WebUser(Base):
    """A person who signs in: an agent (tied to one worker) or a supervisor (sees everyone)."""

    __tablename__ = "web_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    # werkzeug.security's "scrypt:N:r:p$salt$hash": the method travels with the hash.
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    # The agent's worker; a supervisor has none.
    worker_sid: Mapped[str | None] = mapped_column(SID, unique=True)
    date_created: Mapped[datetime] = mapped_column(DateTime)
    date_updated: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        CheckConstraint("role IN ('agent', 'supervisor')", name="role"),
        CheckConstraint("role = 'supervisor' OR worker_sid IS NOT NULL", name="agent_has_worker"),
    )

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"


class WebSession(Base):
    """One signed-in browser. The session cookie carries a random token; this row is what makes it valid, so
    signing out (deleting the row) makes every copy of the cookie worthless."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # SHA-256 of the cookie's token: the table alone signs nobody in.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_users.id", ondelete="CASCADE"), index=True)
    date_created: Mapped[datetime] = mapped_column(DateTime)
    # The last request seen, to the minute (see auth.LAST_SEEN_PRECISION): the idle timeout counts from it.
    last_seen: Mapped[datetime] = mapped_column(DateTime)
