"""The API under test, driven by the official twilio SDK in-process (no sockets)."""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

import pytest
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client

from app import create_app
from callcenter.routing import accounts

ACCOUNT_SID = "AC" + "a" * 32
AUTH_TOKEN = "secret-token-of-the-test-account"


class FlaskAppHttpClient(HttpClient):
    """Sends the SDK's requests to the Flask app through its test client."""

    def __init__(self, app):
        super().__init__(logger=None, is_async=False)
        self.client = app.test_client()
        self.requests: list[tuple[str, str]] = []

    def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                allow_redirects=False):
        parts = urlsplit(url)
        headers = dict(headers or {})
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        self.requests.append((method, parts.path))
        response = self.client.open(parts.path, method=method, query_string=params or parts.query or None,
                                    data=data, headers=headers, base_url="http://taskrouter.local")
        return Response(response.status_code, response.get_data(as_text=True), response.headers)


@pytest.fixture
def app(database_url, clock):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "RUN_SWEEPER": False,
                      "AUTO_MIGRATE": False, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN})
    app.extensions["router"].clock = clock
    yield app
    app.extensions["router"].dispose()


@pytest.fixture
def router(app):
    return app.extensions["router"]


@pytest.fixture
def http(app):
    return FlaskAppHttpClient(app)


@pytest.fixture
def client(http):
    """The official SDK, as a TaskRouter user would use it."""
    return Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http, environment={"_": "_"})


@pytest.fixture
def taskrouter(client):
    return client.taskrouter.v1


@pytest.fixture
def other_client(app, router):
    """The SDK authenticated as a second account, which must never see the first one's resources."""
    credentials = accounts.create_account(router, "Other tenant")
    return Client(credentials.sid, credentials.secret, http_client=FlaskAppHttpClient(app), environment={"_": "_"})
