"""The simulator and the app on real local ports: webhooks over HTTP, the SDK over HTTP with a host rewrite."""

from __future__ import annotations

import threading

import pytest
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from werkzeug.serving import make_server

from callcenter.simulator import Caller, HttpTransport, create_simulator, simulator_of
from tests.simulator.conftest import ACCOUNT_SID, AUTH_TOKEN, NUMBER, PhoneApp, twiml


@pytest.fixture
def serve():
    servers = []

    def start(app) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()


def test_a_call_dequeued_by_the_app_over_http(serve):
    app = PhoneApp()
    app_url = serve(app.flask)
    twilio = create_simulator(app_url, ACCOUNT_SID, AUTH_TOKEN, transport=HttpTransport(), number=NUMBER)
    sim = simulator_of(twilio)
    sim_url = serve(twilio)

    class Rewrite(TwilioHttpClient):
        def request(self, method, url, *args, **kwargs):
            return super().request(method, url.replace("https://api.twilio.com", sim_url), *args, **kwargs)

    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=Rewrite(), environment={"_": "_"})

    def wait(form):  # the app dequeues the caller from inside a webhook, through the SDK, over HTTP
        if form["QueueTime"] != "0":
            client.queues(form["QueueSid"]).members(form["CallSid"]).update(url=f"{app_url}/voice/connected")
        return twiml('<Pause length="5"/>')

    app.on("/voice/incoming", twiml('<Enqueue waitUrl="/voice/wait" action="/voice/after">support</Enqueue>'))
    app.on("/voice/wait", wait)
    app.on("/voice/connected", twiml("<Say>Hello from the agent</Say>"))
    call = sim.place_call(Caller("+15551230001"))
    sim.run_until_idle()
    assert app.rejected == []
    assert app.requests_to("/voice/after")[0]["QueueResult"] == "redirected"
    assert call.verbs() == ["Enqueue", "Pause", "Pause", "Say"] and call.status == "completed"
    assert any(r["path"].endswith(f"/Members/{call.sid}.json") for r in sim.requests)
