"""Agents change their activity by text message: Twilio's Messaging webhook, `POST /sms/incoming`.

The sender is found by the phone number registered on their worker (`directory.py`), the text is
read as a command and carried out in one engine transaction (`commands.py`), and the answer is one
SMS in TwiML. A MessageSid is acted on once (`models.SmsMessage`).
"""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("sms", __name__, url_prefix="/sms")

from . import messages  # noqa: E402,F401  (routes register on bp)


def register(app: Flask) -> None:
    app.register_blueprint(bp)
