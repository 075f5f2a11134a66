"""Every webhook carries a valid X-Twilio-Signature; an app validating with another token refuses them."""

from __future__ import annotations

from callcenter.simulator import Caller, WsgiTransport, create_simulator, simulator_of
from tests.simulator.conftest import ACCOUNT_SID, PhoneApp, twiml


def test_every_webhook_of_a_busy_call_validates(sim, phone_app):
    sim.add_phone("client:alice", answer_after=1, handle_time=5)
    phone_app.on("/voice/incoming", twiml('<Gather action="/voice/menu?lang=es" method="GET" numDigits="1"/>'))
    phone_app.on("/voice/menu", twiml('<Dial action="/voice/done"><Client statusCallback="/voice/leg" '
                                      'statusCallbackEvent="initiated answered completed">alice</Client></Dial>'))
    sim.place_call(Caller("+15551230001", digits="2"))
    sim.run_until_idle()
    assert phone_app.rejected == []
    assert {path for path, _ in phone_app.received} == {"/voice/incoming", "/voice/menu", "/voice/leg", "/voice/done"}
    assert phone_app.requests_to("/voice/menu")[0]["lang"] == "es"


def test_an_app_with_another_token_rejects_the_webhooks_and_the_call_fails_as_an_application_error():
    app = PhoneApp(auth_token="another-token")
    twilio = create_simulator("http://app.test", ACCOUNT_SID, "simulator-token", transport=WsgiTransport(app.flask))
    sim = simulator_of(twilio)
    call = sim.place_call(Caller("+15551230001"))
    sim.run_until_idle()
    assert app.rejected == ["http://app.test/voice/incoming"]
    assert call.status == "completed" and sim.errors[0]["code"] == 11200
    assert call.webhooks()[0]["status"] == 403
