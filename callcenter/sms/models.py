"""What the SMS app remembers: each agent's text it acted on, so that Twilio's retry of one MessageSid acts once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.routing.models import SID, Base


class SmsMessage(Base):
    """A text from an agent, written in the same transaction as the change it made; kept for a day."""

    __tablename__ = "sms_messages"

    message_sid: Mapped[str] = mapped_column(String(34), primary_key=True)
    workspace_sid: Mapped[str] = mapped_column(SID)
    worker_sid: Mapped[str] = mapped_column(SID)
    body: Mapped[str] = mapped_column(String(160))
    # The answer sent the first time: a retry gets the same words, and nothing changes again.
    reply: Mapped[str] = mapped_column(Text)
    date_created: Mapped[datetime] = mapped_column(DateTime, index=True)
