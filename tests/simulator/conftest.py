"""A tiny voice app that answers TwiML (validating every signature), the simulator in front of it, and the SDK."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask, Response, abort, request
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from callcenter.simulator import WsgiHttpClient, WsgiTransport, create_simulator, simulator_of

ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "simulator-test-auth-token-0123456789"
APP_URL = "http://app.test"
NUMBER = "+15550100000"


class PhoneApp:
    """The app under the simulator: each path answers fixed TwiML or a function of the form; 403 on a bad signature."""

    def __init__(self, auth_token: str = AUTH_TOKEN) -> None:
        self.flask = Flask("phone-app")
        self.routes: dict[str, Callable[[dict], str] | str] = {}
        self.received: list[tuple[str, dict]] = []
        self.rejected: list[str] = []
        validator = RequestValidator(auth_token)

        @self.flask.route("/<path:path>", methods=["GET", "POST"])
        def answer(path: str):
            params = request.form if request.method == "POST" else {}
            if not validator.validate(request.url, params, request.headers.get("X-Twilio-Signature", "")):
                self.rejected.append(request.url)
                abort(403)
            form = request.values.to_dict()
            self.received.append(("/" + path, form))
            handler = self.routes.get("/" + path)
            if handler is None:
                return Response("<Response/>", mimetype="text/xml")
            body = handler(form) if callable(handler) else handler
            return Response(body, mimetype="text/xml")

    def on(self, path: str, handler: Callable[[dict], str] | str) -> None:
        self.routes[path] = handler

    def requests_to(self, path: str) -> list[dict]:
        return [form for received_path, form in self.received if received_path == path]


def twiml(*verbs: str) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?><Response>' + "".join(verbs) + "</Response>"


@pytest.fixture
def phone_app() -> PhoneApp:
    return PhoneApp()


@pytest.fixture
def twilio(phone_app):
    """The simulator's REST app, delivering webhooks straight into the phone app (no sockets)."""
    return create_simulator(APP_URL, ACCOUNT_SID, AUTH_TOKEN, transport=WsgiTransport(phone_app.flask), number=NUMBER)


@pytest.fixture
def sim(twilio):
    return simulator_of(twilio)


@pytest.fixture
def client(twilio) -> Client:
    """The official SDK, its requests handed to the simulator."""
    return Client(ACCOUNT_SID, AUTH_TOKEN, http_client=WsgiHttpClient(twilio), environment={"_": "_"})
