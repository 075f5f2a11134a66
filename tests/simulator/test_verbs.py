"""Each TwiML verb as a simulated caller experiences it."""

from __future__ import annotations

from callcenter.simulator import Caller
from tests.simulator.conftest import APP_URL, NUMBER, twiml


def test_incoming_call_posts_twilio_params_and_follows_say_then_ends(sim, phone_app):
    phone_app.on("/voice/incoming", twiml("<Say>Welcome to Acme support</Say>", "<Pause length=\"3\"/>"))
    call = sim.place_call(Caller("+15551230001"))
    assert sim.run_until_idle()
    first = phone_app.requests_to("/voice/incoming")[0]
    assert first["CallSid"] == call.sid and first["From"] == "+15551230001" and first["To"] == NUMBER
    assert first["CallStatus"] == "ringing" and first["Direction"] == "inbound" and first["ApiVersion"] == "2010-04-01"
    assert call.verbs() == ["Say", "Pause"]
    assert call.status == "completed" and call.duration() == 5  # "Welcome to Acme support" ~2 s, then 3 s
    assert sim.errors == []


def test_gather_posts_the_callers_digits_to_the_action(sim, phone_app):
    phone_app.on("/voice/incoming", twiml('<Gather action="/voice/menu" numDigits="1"><Say>Press 1 for sales</Say></Gather>',
                                          "<Say>No input</Say>"))
    phone_app.on("/voice/menu", lambda form: twiml(f"<Say>You chose {form['Digits']}</Say>"))
    call = sim.place_call(Caller("+15551230001", digits="17"))
    sim.run_until_idle()
    [menu] = phone_app.requests_to("/voice/menu")
    assert menu["Digits"] == "1" and menu["CallStatus"] == "in-progress"
    assert call.verbs() == ["Gather", "Say"]
    assert "You chose 1" in call.webhooks("gather-action")[0]["reply"]


def test_gather_speech_posts_speech_result(sim, phone_app):
    phone_app.on("/voice/incoming", twiml('<Gather input="speech dtmf" action="/voice/menu">',
                                          "<Say>How can we help?</Say></Gather>"))
    sim.place_call(Caller("+15551230001", speech="billing question"))
    sim.run_until_idle()
    [menu] = phone_app.requests_to("/voice/menu")
    assert menu["SpeechResult"] == "billing question" and "Digits" not in menu


def test_gather_without_input_falls_through_after_its_timeout(sim, phone_app):
    phone_app.on("/voice/incoming", twiml('<Gather action="/voice/menu" timeout="7"><Say>Press 1</Say></Gather>',
                                          "<Say>Goodbye</Say>"))
    call = sim.place_call(Caller("+15551230001"))
    sim.run_until_idle()
    assert phone_app.requests_to("/voice/menu") == []
    assert call.verbs() == ["Gather", "Say"]
    assert call.duration() == 1 + 7 + 1


def test_gather_action_on_empty_result_posts_empty_digits(sim, phone_app):
    phone_app.on("/voice/incoming", twiml('<Gather action="/voice/menu" actionOnEmptyResult="true"/>'))
    sim.place_call(Caller("+15551230001"))
    sim.run_until_idle()
    assert phone_app.requests_to("/voice/menu") == [phone_app.requests_to("/voice/menu")[0]]
    assert phone_app.requests_to("/voice/menu")[0]["Digits"] == ""


def test_redirect_fetches_relative_url_with_its_method(sim, phone_app):
    phone_app.on("/voice/incoming", twiml('<Redirect method="GET">next?step=2</Redirect>', "<Say>never</Say>"))
    phone_app.on("/voice/next", twiml("<Say>Step two</Say>"))
    call = sim.place_call(Caller("+15551230001"))
    sim.run_until_idle()
    redirect = call.webhooks("redirect")[0]
    assert redirect["method"] == "GET" and redirect["url"] == f"{APP_URL}/voice/next?step=2"
    assert phone_app.requests_to("/voice/next")[0]["step"] == "2"
    assert call.verbs() == ["Redirect", "Say"] and phone_app.rejected == []


def test_hangup_ends_the_call_and_skips_the_rest(sim, phone_app):
    phone_app.on("/voice/incoming", twiml("<Hangup/>", "<Say>never</Say>"))
    call = sim.place_call(Caller("+15551230001"))
    sim.run_until_idle()
    assert call.verbs() == ["Hangup"] and call.status == "completed"


def test_reject_busy_leaves_the_call_unanswered(sim, phone_app):
    phone_app.on("/voice/incoming", twiml('<Reject reason="busy"/>'))
    call = sim.place_call(Caller("+15551230001"))
    sim.run_until_idle()
    assert call.status == "busy" and call.start_time is None


def test_record_posts_the_recording_and_the_transcription(sim, phone_app):
    phone_app.on("/voice/incoming", twiml("<Say>Leave a message</Say>",
                                          '<Record action="/voice/recorded" maxLength="30"'
                                          ' transcribeCallback="/voice/text"/>'))
    call = sim.place_call(Caller("+15551230001", voicemail=True, voicemail_seconds=9, voicemail_text="Call me back"))
    sim.run_until_idle()
    [recorded] = phone_app.requests_to("/voice/recorded")
    assert recorded["RecordingDuration"] == "9" and recorded["RecordingSid"].startswith("RE")
    assert recorded["RecordingUrl"].endswith("/Recordings/" + recorded["RecordingSid"])
    [text] = phone_app.requests_to("/voice/text")
    assert text["TranscriptionText"] == "Call me back" and text["TranscriptionStatus"] == "completed"
    assert text["RecordingSid"] == recorded["RecordingSid"] and text["CallSid"] == call.sid
    assert call.outcome == "voicemail" and call.status == "completed"


def test_a_recording_is_served_at_its_url_with_the_accounts_credentials(twilio, sim, phone_app):
    import io
    import wave

    from tests.simulator.conftest import ACCOUNT_SID, AUTH_TOKEN

    phone_app.on("/voice/incoming", twiml('<Record action="/voice/recorded" maxLength="30"/>'))
    sim.place_call(Caller("+15551230001", voicemail=True, voicemail_seconds=9))
    sim.run_until_idle()
    [recorded] = phone_app.requests_to("/voice/recorded")
    path = recorded["RecordingUrl"].split("://", 1)[1].split("/", 1)[1]
    rest = twilio.test_client()
    assert rest.get(f"/{path}").status_code == 401  # Twilio can require the account's credentials for media
    media = rest.get(f"/{path}", auth=(ACCOUNT_SID, AUTH_TOKEN))
    assert media.status_code == 200 and media.mimetype == "audio/x-wav"
    with wave.open(io.BytesIO(media.data)) as audio:
        assert audio.getnframes() / audio.getframerate() == 9
    assert rest.get(f"/{path[:-4]}0000", auth=(ACCOUNT_SID, AUTH_TOKEN)).status_code == 404


def test_caller_without_voicemail_hangs_up_at_the_record_prompt(sim, phone_app):
    phone_app.on("/voice/incoming", twiml('<Record action="/voice/recorded"/>'))
    call = sim.place_call(Caller("+15551230001", voicemail=False))
    sim.run_until_idle()
    assert phone_app.requests_to("/voice/recorded") == [] and call.status == "completed"


def test_app_error_reply_is_an_application_error_and_ends_the_call(sim, phone_app):
    phone_app.on("/voice/incoming", twiml('<Redirect>/voice/broken</Redirect>'))
    phone_app.on("/voice/broken", "this is not xml")
    call = sim.place_call(Caller("+15551230001"))
    sim.run_until_idle()
    assert call.status == "completed"
    assert [error["code"] for error in sim.errors] == [12100]


def test_missing_route_status_is_an_http_retrieval_failure(sim, phone_app):
    phone_app.flask.view_functions["answer"] = lambda path: ("nope", 500)
    call = sim.place_call(Caller("+15551230001"))
    sim.run_until_idle()
    assert call.status == "completed" and sim.errors[0]["code"] == 11200


def test_play_loops_take_play_seconds_each(sim, phone_app):
    phone_app.on("/voice/incoming", twiml('<Play loop="3">https://example.com/hold.mp3</Play>'))
    call = sim.place_call(Caller("+15551230001"))
    sim.run_until_idle()
    assert call.duration() == 3 * sim.play_seconds
