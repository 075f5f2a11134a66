"""Test helpers for the apps built on the engine: a contact center loaded from tests/data, signed Twilio webhooks,
and the engine's callbacks delivered to the app in-process.

    app = contact_center_app(database_url, clock)
    twilio = TwilioWebhooks(app)
    twilio.post("/voice/incoming", CallSid="CA...", From="+1...", To="+1...")
    deliver_callbacks(app)            # the engine's assignment/event callbacks reach the app
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask
from twilio.request_validator import RequestValidator

from app import create_app
from callcenter import contact_center
from callcenter.database import get_router
from callcenter.routing.outbox import Response

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "auth-token-of-the-test-twilio-account"
PUBLIC_BASE_URL = "https://cc.example.com"
TWILIO_NUMBER = "+15005550000"
TWILIO_API = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}"
CONTACT_CENTER_FILE = str(Path(__file__).parent / "data" / "contact-center.toml")


def contact_center_app(database_url: str, clock=None, **config) -> Flask:
    """The app on `database_url` with the test contact center loaded and callbacks delivered in-process."""
    app = create_app({
        "TESTING": True, "DATABASE_URL": database_url, "RUN_SWEEPER": False, "AUTO_MIGRATE": False,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "TWILIO_PHONE_NUMBER": TWILIO_NUMBER, "CONTACT_CENTER_FILE": CONTACT_CENTER_FILE,
        "SECRET_KEY": "test-secret-key", **config,
    })
    router = get_router(app)
    if clock is not None:
        router.clock = clock
    router.deliverer.transport = AppTransport(app)
    with app.app_context():
        contact_center.load(app)
    return app


class AppTransport:
    """The engine's outbox transport, posting callbacks to the app's test client (signature header kept)."""

    def __init__(self, app: Flask) -> None:
        self.client = app.test_client()
        self.sent: list[tuple[str, dict[str, str]]] = []

    def __call__(self, url: str, params: dict[str, str], headers: dict[str, str], timeout: float) -> Response:
        self.sent.append((url, params))
        parts = urlsplit(url)
        reply = self.client.post(parts.path + (f"?{parts.query}" if parts.query else ""), data=params,
                                 headers=headers, base_url=f"{parts.scheme}://{parts.netloc}")
        return Response(reply.status_code, reply.get_data(as_text=True))


def deliver_callbacks(app: Flask) -> int:
    """Deliver every due outbox message (assignment and event callbacks); returns how many went out."""
    router = get_router(app)
    total = 0
    while True:
        sent = router.deliver_outbox()
        total += sent
        if not sent:
            return total


class TwilioWebhooks:
    """Posts webhooks to the app as Twilio does: to the public URL, signed with the account's auth token."""

    def __init__(self, app: Flask, auth_token: str = AUTH_TOKEN, base_url: str = PUBLIC_BASE_URL) -> None:
        self.client = app.test_client()
        self.validator = RequestValidator(auth_token)
        self.base_url = base_url

    def signature(self, path: str, params: dict[str, str]) -> str:
        return self.validator.compute_signature(self.base_url + path, params)

    def post(self, path: str, *, signature: str | None = None, **params: str):
        """POST `params` to `path` (query string allowed) with a valid signature unless one is given."""
        params = {key: str(value) for key, value in params.items()}
        headers = {"X-Twilio-Signature": self.signature(path, params) if signature is None else signature}
        return self.client.post(path, data=params, headers=headers, base_url=self.base_url)
