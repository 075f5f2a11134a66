"""Fixtures for the agent console and the dashboard: the test contact center, its users, and a signed-in browser."""

from __future__ import annotations

import re

import pytest
import responses

from callcenter.contact_center import current
from callcenter.database import get_router
from callcenter.web.auth import create_user, find_worker
from callcenter.web.live import hub_of
from tests.support import contact_center_app
from tests.voice.conftest import Scenario, TwilioRest

PASSWORD = "correct horse battery"


class Browser:
    """A test client that signs in and posts like the pages do: with the CSRF token of a page it loaded."""

    def __init__(self, app) -> None:
        self.app = app
        self.client = app.test_client()
        self.token: str | None = None

    def login(self, username: str, password: str = PASSWORD):
        response = self.client.post("/login", data={"username": username, "password": password,
                                                    "csrf_token": self.page_token("/login")})
        self.token = None
        return response

    def page_token(self, path: str) -> str:
        page = self.client.get(path, follow_redirects=True).get_data(as_text=True)
        return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)

    def get(self, path: str, **kwargs):
        return self.client.get(path, **kwargs)

    def json(self, path: str) -> dict:
        response = self.client.get(path, headers={"Accept": "application/json"})
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def post(self, path: str, data: dict | None = None, *, token: str | None = "page", as_json: bool = True):
        """POST as the page's fetch does (CSRF header, JSON answer); `token=None` sends none."""
        if token == "page":
            token = self.token = self.token or self.page_token("/")
        headers = {"Accept": "application/json"} if as_json else {}
        if token is not None:
            headers["X-CSRFToken"] = token
        return self.client.post(path, data=data or {}, headers=headers)


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch):
    """scrypt with a small work factor: the same code path, a hundredth of the CPU (the method travels in the hash)."""
    import callcenter.web.auth

    monkeypatch.setattr(callcenter.web.auth, "HASH_METHOD", "scrypt:1024:8:1")


@pytest.fixture
def rest():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield TwilioRest(mock)


@pytest.fixture
def app(database_url, clock):
    app = contact_center_app(database_url, clock)
    with app.app_context():
        workspace = current(app).workspace_sid
        for name in ("Alice", "Bob", "Carol"):
            create_user(name.lower(), PASSWORD, "agent", find_worker(name, workspace).sid)
        create_user("sam", PASSWORD, "supervisor", None)
    yield app
    hub_of(app).stop()
    get_router(app).dispose()


@pytest.fixture
def scenario(app, clock, rest):
    return Scenario(app, clock, rest)


@pytest.fixture
def browser(app):
    return Browser(app)


@pytest.fixture
def alice(app):
    browser = Browser(app)
    assert browser.login("alice").status_code == 302
    return browser


@pytest.fixture
def supervisor(app):
    browser = Browser(app)
    assert browser.login("sam").status_code == 302
    return browser
