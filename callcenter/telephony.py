"""The one place that calls Twilio's REST API: ring agents, move callers, hang up, send texts.

The base URL is configurable (TWILIO_API_BASE_URL), so the same code talks to Twilio, to the local
phone simulator, or to a mock in tests. Twilio's refusals become `TelephonyError` (with Twilio's code,
e.g. 21220 "call is not in-progress"); network trouble and Twilio's 5xx become `TelephonyUnavailable`,
which callers treat as "try again later". Of those, `TelephonyUnreachable` says the request surely
never reached Twilio (refused or timed-out connection, 429), so sending it again cannot do it twice;
a read timeout, a dropped connection or a 5xx may come after Twilio did what was asked. Nothing here
touches the engine: the voice app decides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import requests
import urllib3
from flask import Flask, current_app
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

log = logging.getLogger("callcenter.telephony")

TWILIO_API = "https://api.twilio.com"
TIMEOUT_SECONDS = 10
# Twilio's refusals of a call that are about the number called (invalid, unreachable, not a phone number): the
# agent or worker who gave it cannot be reached. Any other refusal (caller ID not verified, authentication,
# geographic permissions) is the account's, and would fail the same way for every agent.
CALLED_NUMBER_ERRORS = frozenset({21211, 21214, 21217, 13223, 13224})


class TelephonyError(Exception):
    """Twilio refused the request (4xx): retrying the same request will not help."""

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class TelephonyUnavailable(TelephonyError):
    """Twilio could not be reached or failed (5xx): the request may succeed later, and may have been done."""


class TelephonyUnreachable(TelephonyUnavailable):
    """The request never reached Twilio (no connection, or 429 Too Many Requests): it was surely not done."""


class _RebasedHttpClient(TwilioHttpClient):
    """Sends the SDK's requests to another base URL (the phone simulator, a test double)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(timeout=TIMEOUT_SECONDS)
        self.base_url = base_url.rstrip("/")

    def request(self, method, url, *args, **kwargs):
        if url.startswith(TWILIO_API):
            url = self.base_url + url[len(TWILIO_API):]
        return super().request(method, url, *args, **kwargs)


@dataclass(frozen=True)
class CallInfo:
    sid: str
    status: str


@dataclass(frozen=True)
class Media:
    content_type: str
    body: bytes


class Telephony:
    def __init__(self, account_sid: str, auth_token: str, base_url: str = TWILIO_API) -> None:
        http_client = _RebasedHttpClient(base_url) if base_url.rstrip("/") != TWILIO_API else TwilioHttpClient(
            timeout=TIMEOUT_SECONDS)
        self.client = Client(account_sid, auth_token, http_client=http_client)
        self.account_sid = account_sid
        self._auth = (account_sid, auth_token)
        self._base_url = base_url.rstrip("/")

    # -- recordings -----------------------------------------------------------------------------------
    def fetch_recording(self, url: str) -> Media:
        """The audio at a recording URL of this account (Twilio may require the account's credentials for it).

        Only URLs of this account's recordings, on Twilio's API host (or the configured stand-in's), are fetched:
        the URL comes from a webhook, and the request carries the auth token.
        """
        prefix = f"/2010-04-01/Accounts/{self.account_sid}/Recordings/"
        for host in {TWILIO_API, self._base_url}:
            if url.startswith(host + prefix) and url[len(host + prefix):].isalnum():
                break
        else:
            raise TelephonyError(f"{url} is not a recording of account {self.account_sid}", code=20404, status=404)
        target = self._base_url + url[len(host):]
        reply = self._do(f"fetch recording {target}",
                         lambda: requests.get(target, auth=self._auth, timeout=TIMEOUT_SECONDS))
        if reply.status_code >= 500:
            raise TelephonyUnavailable(f"Twilio failed to send the recording (HTTP {reply.status_code})",
                                       status=reply.status_code)
        if reply.status_code != 200:
            raise TelephonyError(f"Twilio refused the recording (HTTP {reply.status_code})", status=reply.status_code)
        return Media(reply.headers.get("Content-Type", "audio/x-wav"), reply.content)

    # -- calls ----------------------------------------------------------------------------------------
    def ring(self, *, to: str, from_: str, url: str, status_callback: str, timeout: int) -> CallInfo:
        """Place a call to an agent; `url` gives the TwiML when they answer."""
        call = self._do("ring " + to, lambda: self.client.calls.create(
            to=to, from_=from_, url=url, method="POST", timeout=timeout, status_callback=status_callback,
            status_callback_method="POST", status_callback_event=["initiated", "ringing", "answered", "completed"]))
        return CallInfo(call.sid, call.status)

    def place_call(self, *, to: str, from_: str, url: str, status_callback: str | None = None,
                   status_callback_events: tuple[str, ...] = (), timeout: int = 60, record: bool = False) -> CallInfo:
        """Place a call that runs the TwiML at `url` once answered (a worker's leg of a voice instruction)."""
        options: dict = {"record": True} if record else {}
        if status_callback:
            options.update(status_callback=status_callback, status_callback_method="POST",
                           status_callback_event=list(status_callback_events or ("completed",)))
        # Twilio rings for at most 600 seconds; TaskRouter's instructions allow up to 999.
        call = self._do("call " + to, lambda: self.client.calls.create(
            to=to, from_=from_, url=url, method="POST", timeout=min(timeout, 600), **options))
        return CallInfo(call.sid, call.status)

    def redirect(self, call_sid: str, url: str, *, status_callback: str | None = None) -> None:
        """Make a live call (e.g. a caller waiting in a queue) continue with the TwiML at `url`.

        `status_callback` replaces the call's own: Twilio keeps one per call.
        """
        options = {"status_callback": status_callback, "status_callback_method": "POST"} if status_callback else {}
        self._do(f"redirect {call_sid}", lambda: self.client.calls(call_sid).update(url=url, method="POST", **options))

    def dequeue(self, queue_sid: str, call_sid: str, url: str) -> None:
        """Take exactly this caller out of the queue to the TwiML at `url` (not the head of the queue)."""
        self._do(f"dequeue {call_sid}", lambda: self.client.queues(queue_sid).members(call_sid).update(
            url=url, method="POST"))

    def ringing_call_to(self, to: str, *, since: datetime) -> str | None:
        """The sid of a call to `to`, created at or after `since` and not over yet (queued, ringing or answered):
        how to find out whether a call whose creation went unanswered was placed after all."""
        calls = self._do(f"list calls to {to}", lambda: self.client.calls.list(to=to, limit=20))
        for call in calls:
            created = call.date_created
            if call.status in ("queued", "initiated", "ringing", "in-progress") and (
                    created is None or created.replace(tzinfo=None) >= since.replace(tzinfo=None)):
                return call.sid
        return None

    def fetch_call(self, call_sid: str) -> CallInfo:
        """The call's current status (`TelephonyError` with status 404 when Twilio has no such call)."""
        call = self._do(f"fetch {call_sid}", lambda: self.client.calls(call_sid).fetch())
        return CallInfo(call.sid, call.status)

    def hang_up(self, call_sid: str) -> None:
        """End a call whether it still rings (canceled) or was answered (completed)."""
        call = self._do(f"cancel {call_sid}", lambda: self.client.calls(call_sid).update(status="canceled"))
        if call.status == "in-progress":
            self._do(f"hang up {call_sid}", lambda: self.client.calls(call_sid).update(status="completed"))

    # -- texts and numbers ----------------------------------------------------------------------------
    def send_sms(self, *, to: str, from_: str, body: str) -> str:
        message = self._do(f"text {to}", lambda: self.client.messages.create(to=to, from_=from_, body=body))
        return message.sid

    def configure_number(self, phone_number: str, *, voice_url: str, sms_url: str, status_callback: str) -> str:
        """Point a Twilio number's Voice and Messaging webhooks at this app; returns its sid."""
        numbers = self._do("find number", lambda: self.client.incoming_phone_numbers.list(
            phone_number=phone_number, limit=2))
        if not numbers:
            raise TelephonyError(f"{phone_number} is not a number of account {self.account_sid}", code=20404,
                                 status=404)
        number = numbers[0]
        self._do(f"configure {phone_number}", lambda: number.update(
            voice_url=voice_url, voice_method="POST", sms_url=sms_url, sms_method="POST",
            status_callback=status_callback, status_callback_method="POST"))
        return number.sid

    def size_queue(self, friendly_name: str, max_size: int) -> str:
        """Make the call queue `friendly_name` hold `max_size` callers (creating it if need be); returns its sid.
        `<Enqueue>` creates a missing queue with Twilio's default size, and refuses callers past it."""
        queues = self._do(f"find queue {friendly_name}", lambda: self.client.queues.list(limit=1000))
        queue = next((queue for queue in queues if queue.friendly_name == friendly_name), None)
        if queue is None:
            return self._do(f"create queue {friendly_name}", lambda: self.client.queues.create(
                friendly_name=friendly_name, max_size=max_size)).sid
        if queue.max_size != max_size:
            self._do(f"size queue {friendly_name}", lambda: queue.update(max_size=max_size))
        return queue.sid

    # -- errors ---------------------------------------------------------------------------------------
    def _do(self, what: str, request):
        try:
            return request()
        except TwilioRestException as err:
            cls = (TelephonyUnreachable if err.status == 429 else TelephonyUnavailable if err.status >= 500
                   else TelephonyError)
            log.warning("twilio refused to %s: HTTP %s, code %s: %s", what, err.status, err.code, err.msg)
            raise cls(err.msg or str(err), code=err.code, status=err.status) from err
        except TwilioException as err:  # the SDK's own, e.g. a list page it could not read (with its response)
            status = getattr(err.args[1], "status_code", None) if len(err.args) > 1 else None
            log.warning("twilio refused to %s: HTTP %s: %s", what, status, err)
            cls = (TelephonyUnreachable if status == 429 else TelephonyUnavailable if status and status >= 500
                   else TelephonyError)
            raise cls(f"Twilio answered HTTP {status} to {what}" if status else str(err), status=status) from err
        except requests.RequestException as err:
            log.warning("twilio unreachable to %s: %s", what, err)
            cls = TelephonyUnreachable if _never_sent(err) else TelephonyUnavailable
            raise cls(f"Twilio is unreachable: {err}") from err


def _never_sent(err: requests.RequestException) -> bool:
    """True when the connection was never made, so Twilio never saw the request.

    A read timeout, or a connection reset while waiting for the answer, may come after Twilio acted.
    """
    if isinstance(err, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(err.args[0], "reason", None) if isinstance(err, requests.ConnectionError) and err.args else None
    # urllib3's NewConnectionError (refused, name not resolved) is a ConnectTimeoutError too.
    return isinstance(reason, urllib3.exceptions.ConnectTimeoutError)


def get_telephony(app: Flask | None = None) -> Telephony:
    """The app's adapter, built on first use from its configuration."""
    app = app or current_app
    telephony = app.extensions.get("telephony")
    if telephony is None:
        telephony = Telephony(app.config.get("TWILIO_ACCOUNT_SID") or "", app.config.get("TWILIO_AUTH_TOKEN") or "",
                              app.config.get("TWILIO_API_BASE_URL") or TWILIO_API)
        app.extensions["telephony"] = telephony
    return telephony
