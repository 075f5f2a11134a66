"""The Twilio REST adapter: a configurable base URL, and Twilio's failures sorted into "refused" and "try later"."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
import requests
import responses

from callcenter.telephony import Telephony, TelephonyError, TelephonyUnavailable, TelephonyUnreachable

SID, TOKEN = "AC" + "2" * 32, "token"
SIMULATOR = "http://127.0.0.1:8765"
CALLS = f"{SIMULATOR}/2010-04-01/Accounts/{SID}/Calls"


@pytest.fixture
def telephony():
    return Telephony(SID, TOKEN, SIMULATOR)


def test_requests_go_to_the_configured_base_url_with_the_account_credentials(telephony):
    with responses.RequestsMock() as mock:
        mock.post(f"{CALLS}.json", json={"sid": "CA" + "1" * 32, "status": "queued"}, status=201)
        call = telephony.ring(to="+15005550001", from_="+15005550000", url="https://x/answer",
                              status_callback="https://x/status", timeout=15)
        request = mock.calls[0].request
    assert call.sid == "CA" + "1" * 32
    assert request.headers["Authorization"].startswith("Basic ")
    form = parse_qsl(request.body)
    assert ("StatusCallbackEvent", "answered") in form and ("Timeout", "15") in form


def test_a_refusal_keeps_twilios_code(telephony):
    with responses.RequestsMock() as mock:
        mock.post(f"{CALLS}/CA1.json", status=400, json={
            "code": 21220, "message": "Call is not in-progress. Cannot redirect.", "status": 400})
        with pytest.raises(TelephonyError) as caught:
            telephony.redirect("CA1", "https://x/voicemail")
    assert caught.value.code == 21220 and not isinstance(caught.value, TelephonyUnavailable)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_and_rate_limits_mean_try_later(telephony, status):
    with responses.RequestsMock() as mock:
        mock.post(f"{CALLS}/CA1.json", status=status, json={"code": 20500, "message": "later", "status": status})
        with pytest.raises(TelephonyUnavailable):
            telephony.redirect("CA1", "https://x/voicemail")


def test_an_unreachable_twilio_means_try_later(telephony):
    with responses.RequestsMock() as mock:
        mock.post(f"{CALLS}/CA1.json", body=requests.ConnectionError("connection refused"))
        with pytest.raises(TelephonyUnavailable, match="unreachable"):
            telephony.redirect("CA1", "https://x/voicemail")


def test_only_requests_that_never_reached_twilio_are_called_unreachable():
    closed_port = Telephony(SID, TOKEN, "http://127.0.0.1:9")  # connection refused: nothing was sent
    with pytest.raises(TelephonyUnreachable):
        closed_port.place_call(to="+15005550001", from_="+15005550000", url="https://x/answer")
    with responses.RequestsMock() as mock:
        mock.post(f"{CALLS}.json", status=429, json={"code": 20429, "message": "Too Many Requests", "status": 429})
        with pytest.raises(TelephonyUnreachable):  # turned away before Twilio did anything
            Telephony(SID, TOKEN, SIMULATOR).place_call(to="+15005550001", from_="+15005550000", url="https://x/a")


@pytest.mark.parametrize("answer", [requests.ReadTimeout("read timed out"), requests.ConnectionError("reset"), 503])
def test_a_lost_answer_or_a_server_error_may_have_done_the_request(telephony, answer):
    with responses.RequestsMock() as mock:
        if isinstance(answer, int):
            mock.post(f"{CALLS}.json", status=answer, json={"code": 20503, "message": "later", "status": answer})
        else:
            mock.post(f"{CALLS}.json", body=answer)
        with pytest.raises(TelephonyUnavailable) as caught:
            telephony.place_call(to="+15005550001", from_="+15005550000", url="https://x/answer")
    assert not isinstance(caught.value, TelephonyUnreachable)


def test_hang_up_cancels_a_ringing_call_and_completes_an_answered_one(telephony):
    with responses.RequestsMock() as mock:
        mock.post(f"{CALLS}/CA1.json", json={"sid": "CA1", "status": "canceled"})
        telephony.hang_up("CA1")
        assert [dict(parse_qsl(c.request.body)) for c in mock.calls] == [{"Status": "canceled"}]
    with responses.RequestsMock() as mock:
        mock.post(f"{CALLS}/CA2.json", json={"sid": "CA2", "status": "in-progress"})
        telephony.hang_up("CA2")
        assert [dict(parse_qsl(c.request.body)) for c in mock.calls] == [{"Status": "canceled"},
                                                                         {"Status": "completed"}]


def test_dequeue_names_the_member_by_call_sid(telephony):
    queue, call = "QU" + "3" * 32, "CA" + "4" * 32
    with responses.RequestsMock() as mock:
        mock.post(f"{SIMULATOR}/2010-04-01/Accounts/{SID}/Queues/{queue}/Members/{call}.json",
                  json={"call_sid": call, "queue_sid": queue})
        telephony.dequeue(queue, call, "https://x/connect")
        assert dict(parse_qsl(mock.calls[0].request.body)) == {"Url": "https://x/connect", "Method": "POST"}
