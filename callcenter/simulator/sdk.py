"""The official twilio SDK pointed at a simulator in the same process (no sockets)."""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

from twilio.http import HttpClient
from twilio.http.response import Response
from werkzeug.test import Client


class WsgiHttpClient(HttpClient):
    """A twilio `HttpClient` that hands every request (any Twilio host) to a WSGI app, e.g. the simulator.

    `Client(account_sid, auth_token, http_client=WsgiHttpClient(simulator_app), environment={"_": "_"})`
    """

    def __init__(self, app) -> None:
        super().__init__(logger=None, is_async=False)
        self.client = Client(app)

    def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                allow_redirects=False):
        parts = urlsplit(url)
        headers = dict(headers or {})
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        response = self.client.open(parts.path, method=method, query_string=params or parts.query or None,
                                    data=data, headers=headers, base_url=f"{parts.scheme}://{parts.netloc}")
        return Response(response.status_code, response.get_data(as_text=True), response.headers)
