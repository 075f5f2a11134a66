"""How the simulator reaches the app: over HTTP with `requests`, or straight into a WSGI app.

Every webhook is signed as Twilio signs it (`X-Twilio-Signature`, HMAC-SHA1 of the URL followed by
the sorted form parameters, keyed with the auth token), so the app can run with validation on.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import requests
from twilio.request_validator import RequestValidator
from werkzeug.test import Client

USER_AGENT = "TwilioProxy/1.1 (callcenter simulator)"


@dataclass
class Reply:
    status: int
    body: str
    content_type: str = ""


class HttpTransport:
    """Webhooks over real HTTP (the app on a port)."""

    def __init__(self, timeout: float = 15.0) -> None:
        self.session = requests.Session()
        self.session.trust_env = False  # a proxy from the environment must not catch 127.0.0.1
        self.timeout = timeout

    def send(self, method: str, url: str, params: dict[str, str], headers: dict[str, str]) -> Reply:
        try:
            response = self.session.request(method, url, data=params if method == "POST" else None, headers=headers,
                                            timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as error:
            return Reply(0, f"{type(error).__name__}: {error}")
        return Reply(response.status_code, response.text, response.headers.get("Content-Type", ""))


class WsgiTransport:
    """Webhooks handed to a WSGI app in-process (a Flask app, its test client), no sockets."""

    def __init__(self, app) -> None:
        self.client = Client(getattr(app, "application", app))

    def send(self, method: str, url: str, params: dict[str, str], headers: dict[str, str]) -> Reply:
        parts = urlsplit(url)
        response = self.client.open(parts.path or "/", base_url=f"{parts.scheme}://{parts.netloc}",
                                    query_string=parts.query or None, method=method,
                                    data=params if method == "POST" else None, headers=headers)
        return Reply(response.status_code, response.get_data(as_text=True), response.headers.get("Content-Type", ""))


def signed_request(auth_token: str, method: str, url: str, params: dict[str, str]) -> tuple[str, dict, dict]:
    """The URL, form and headers of a webhook as Twilio sends it: a GET carries the params in its query."""
    method = method.upper()
    if method == "GET" and params:
        url = url + ("&" if urlsplit(url).query else "?") + urlencode(params)
        params = {}
    signature = RequestValidator(auth_token).compute_signature(url, params)
    headers = {"X-Twilio-Signature": signature, "User-Agent": USER_AGENT}
    if method == "POST":
        headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
    return url, params, headers
