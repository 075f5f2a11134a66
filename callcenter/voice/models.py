"""What the voice app remembers about calls, beside the engine's tasks: one row per caller, one per agent leg."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.routing.models import SID, Base

OUTCOMES = ("answered", "abandoned", "missed", "failed")


class Call(Base):
    """A caller's call: its task, where it waited, how it ended, and any voicemail left."""

    __tablename__ = "voice_calls"

    call_sid: Mapped[str] = mapped_column(String(34), primary_key=True)
    workspace_sid: Mapped[str] = mapped_column(SID, index=True)
    # One CallSid, one task: Twilio's retries of a webhook find this row and create nothing.
    task_sid: Mapped[str | None] = mapped_column(SID, unique=True)
    from_number: Mapped[str] = mapped_column(String(64), default="")
    to_number: Mapped[str] = mapped_column(String(64), default="")
    choices: Mapped[str] = mapped_column(Text, default="{}")
    queue_sid: Mapped[str | None] = mapped_column(String(34))
    # None while the call is in the menu or waiting; then answered / abandoned / missed / failed.
    outcome: Mapped[str | None] = mapped_column(String(16), index=True)
    worker_sid: Mapped[str | None] = mapped_column(SID)
    date_created: Mapped[datetime] = mapped_column(DateTime, index=True)
    date_enqueued: Mapped[datetime | None] = mapped_column(DateTime)
    date_answered: Mapped[datetime | None] = mapped_column(DateTime)
    date_ended: Mapped[datetime | None] = mapped_column(DateTime)
    recording_url: Mapped[str | None] = mapped_column(Text)
    recording_sid: Mapped[str | None] = mapped_column(String(34))
    recording_duration: Mapped[int | None] = mapped_column(Integer)
    transcription: Mapped[str | None] = mapped_column(Text)
    supervisors_notified: Mapped[bool] = mapped_column(Boolean, default=False)
    # Where the agent goes from wrap-up, kept with the call so the wrap-up timer needs nothing else.
    wrap_up_activity_sid: Mapped[str | None] = mapped_column(SID)
    after_wrap_up_activity_sid: Mapped[str | None] = mapped_column(SID)


class AgentLeg(Base):
    """The call placed to an agent for one reservation: ringing, answered, bridged or ended."""

    __tablename__ = "voice_agent_legs"

    call_sid: Mapped[str] = mapped_column(String(34), primary_key=True)
    # One reservation, one ring: a retried assignment callback finds this row and rings nobody.
    reservation_sid: Mapped[str] = mapped_column(SID, unique=True)
    task_sid: Mapped[str] = mapped_column(SID, index=True)
    worker_sid: Mapped[str] = mapped_column(SID)
    workspace_sid: Mapped[str] = mapped_column(SID)
    status: Mapped[str] = mapped_column(String(16))
    date_created: Mapped[datetime] = mapped_column(DateTime, index=True)  # retention.py deletes the oldest first
    date_updated: Mapped[datetime] = mapped_column(DateTime)
