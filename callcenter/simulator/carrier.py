"""The simulated carrier: every call, queue, conference, phone and number, and the clock that moves them.

Nothing here runs inside a REST request or a webhook of the app: REST operations and anything one
call does to another are scheduled (`scheduler.soon`) and run from the event loop (`advance`,
`run_until_idle`, or the real-time runner thread). So the app may call the REST API while it
answers a webhook, in-process or over HTTP, without re-entering a running call.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from callcenter.simulator import twiml
from callcenter.simulator.calls import ApplicationError, BridgeEnded, Call, Dequeued, HungUp, Program, Redirect, Signal
from callcenter.simulator.clock import Scheduler, VirtualClock, is_virtual
from callcenter.simulator.parties import Caller, Phone, contact_key
from callcenter.simulator.queues import Queue
from callcenter.simulator.transport import HttpTransport, Reply, signed_request

API_VERSION = "2010-04-01"


def new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def rfc2822(moment: datetime | None) -> str | None:
    return moment.strftime("%a, %d %b %Y %H:%M:%S +0000") if moment is not None else None


@dataclass
class IncomingNumber:
    """A phone number of the account and where its calls and texts go."""

    number: str
    voice_url: str
    sms_url: str | None = None
    voice_method: str = "POST"
    sms_method: str = "POST"
    status_callback: str | None = None


class Simulator:
    def __init__(self, app_base_url: str, account_sid: str, auth_token: str, clock=None, transport=None,
                 number: str = "+15550100000", voice_path: str = "/voice/incoming", sms_path: str = "/sms/incoming",
                 api_base_url: str = "https://api.twilio.com", play_seconds: float = 10.0) -> None:
        self.app_base_url = app_base_url.rstrip("/")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.clock = clock if clock is not None else VirtualClock()
        self.scheduler = Scheduler(self.clock)
        self.transport = transport if transport is not None else HttpTransport()
        self.api_base_url = api_base_url.rstrip("/")
        self.play_seconds = play_seconds
        self.calls: dict[str, Call] = {}
        self.queues: dict[str, Queue] = {}
        self.conferences: dict = {}
        self.phones: dict[str, Phone] = {}
        self.messages: dict = {}
        self.recordings: dict[str, dict] = {}  # RE sid -> {"call_sid", "seconds"}: served as silence of that length
        self.numbers: dict[str, IncomingNumber] = {}
        self.requests: list[dict] = []  # REST requests received
        self.errors: list[dict] = []
        self.log: deque[dict] = deque(maxlen=20000)  # the latest entries of every call and message, for the demo UI
        self.default_number = number
        self.add_number(number, voice_url=self.app_base_url + voice_path, sms_url=self.app_base_url + sms_path)
        self._lock = threading.Lock()  # guards the dicts above against REST threads; never held while running calls
        self._runner: threading.Thread | None = None

    # -- the world ---------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def add_number(self, number: str, voice_url: str, sms_url: str | None = None, **settings) -> IncomingNumber:
        self.numbers[number] = IncomingNumber(number, voice_url, sms_url, **settings)
        return self.numbers[number]

    def add_phone(self, contact: str, **behaviour) -> Phone:
        """An agent's phone or client: `add_phone("client:alice", answer_after=3, handle_time=120)`."""
        phone = Phone(contact, **behaviour)
        self.phones[phone.contact] = phone
        return phone

    def place_call(self, caller: Caller | str, to: str | None = None) -> Call:
        """A caller dials one of the account's numbers; the call starts at the next step of the clock."""
        caller = Caller(caller) if isinstance(caller, str) else caller
        number = self.numbers[to or self.default_number]
        call = self._new_call(caller.number, number.number, "inbound", "ringing", party=caller)
        if number.status_callback:
            call.status_callback, call.status_callback_events = number.status_callback, ("completed",)
        from callcenter.simulator.verbs import document_program

        self.scheduler.soon(lambda: call.is_active and self.run(call, document_program(
            self, call, Redirect(number.voice_url, number.voice_method, source="incoming"))), "incoming call")
        return call

    def send_sms(self, from_: str, body: str, to: str | None = None):
        """A text from `from_` to one of the account's numbers, posted to the app at the next step."""
        from callcenter.simulator.messages import receive_sms

        return receive_sms(self, from_, body, to or self.default_number)

    def queue_named(self, name: str, create: bool = True) -> Queue | None:
        for queue in self.queues.values():
            if queue.friendly_name == name:
                return queue
        if not create:
            return None
        return self.create_queue(name)

    def create_queue(self, name: str, max_size: int = 100) -> Queue:
        with self._lock:
            queue = Queue(new_sid("QU"), self.account_sid, name, max_size, self.now(), self.now())
            self.queues[queue.sid] = queue
        return queue

    # -- time --------------------------------------------------------------------------------------

    def advance(self, seconds: float = 0) -> None:
        """Run everything that happens in the next `seconds` of virtual time."""
        self._require_virtual()
        self.scheduler.advance(seconds)

    def run_until_idle(self, max_seconds: float = 24 * 3600) -> bool:
        """Run until nothing is left to happen (True) or `max_seconds` of virtual time passed (False)."""
        self._require_virtual()
        limit = self.now() + timedelta(seconds=max_seconds)
        while self.scheduler.run_next(limit):
            pass
        return self.scheduler.pending() == 0

    def run_until(self, condition: Callable[[], bool], max_seconds: float = 24 * 3600) -> bool:
        """Run event by event until `condition()` holds (True) or time or events run out (False)."""
        self._require_virtual()
        limit = self.now() + timedelta(seconds=max_seconds)
        while not condition():
            if not self.scheduler.run_next(limit):
                return condition()
        return True

    def start(self) -> None:
        """Real time: fire events from a background thread as the wall clock reaches them."""
        self._runner = threading.Thread(target=self.scheduler.run_forever, name="simulator", daemon=True)
        self._runner.start()

    def stop(self) -> None:
        self.scheduler.stop()
        if self._runner is not None:
            self._runner.join(timeout=5)
            self._runner = None

    def _require_virtual(self) -> None:
        if not is_virtual(self.clock):
            raise RuntimeError("advance/run_until_idle need a virtual clock; with the wall clock use start()")

    # -- calls -------------------------------------------------------------------------------------

    def _new_call(self, from_: str, to: str, direction: str, status: str, **fields) -> Call:
        call = Call(new_sid("CA"), self.account_sid, from_, to, direction, status, self.now(), **fields)
        call.date_updated = call.date_created
        with self._lock:
            self.calls[call.sid] = call
        self.record(call, "status", status=status)
        return call

    def create_call(self, to: str, from_: str, url: str | None = None, method: str = "POST", twiml_text: str | None = None,
                    status_callback: str | None = None, events: tuple[str, ...] = (), callback_method: str = "POST",
                    timeout: float = 60) -> Call:
        """An outbound call created through the REST API: it rings `to` and runs the TwiML when answered."""
        call = self._new_call(from_, to, "outbound-api", "queued", url=url, method=method, twiml=twiml_text,
                              status_callback=status_callback, status_callback_events=events or ("completed",),
                              status_callback_method=callback_method, timeout=timeout)
        from callcenter.simulator.verbs import document_program

        def answered() -> None:
            start = Redirect(call.url, call.method, twiml=call.twiml, source="answer")
            self.run(call, document_program(self, call, start))

        self.scheduler.soon(lambda: call.status == "queued" and self.ring(call, answered), "outbound call")
        return call

    def ring(self, call: Call, on_answered: Callable[[], None], on_failed: Callable[[], None] | None = None) -> None:
        """Ring the phone at `call.to`: it answers, stays busy, or rings until `call.timeout`."""
        phone = self.phones.get(contact_key(call.to))
        call.party = phone
        self.status_event(call, "initiated")
        self.set_status(call, "ringing")
        self.status_event(call, "ringing")
        if phone is not None:
            if phone.active_calls:
                phone.double_booked.append(call.sid)
            phone.calls.append(call.sid)

        def fail(status: str) -> None:
            if call.status == "ringing":
                self.finish(call, status)
                if on_failed:
                    on_failed()

        def answer() -> None:
            if call.status != "ringing":
                return
            self.set_status(call, "in-progress")
            call.start_time = self.now()
            if phone is not None:
                phone.active_calls.add(call.sid)
            self.status_event(call, "answered")
            on_answered()

        if phone is not None and phone.busy:
            self.scheduler.soon(lambda: fail("busy"), "busy")
        elif phone is not None and phone.answer_after is not None and phone.answer_after < call.timeout:
            self.scheduler.after(phone.answer_after, answer, "answer")
        else:
            self.scheduler.after(call.timeout, lambda: fail("no-answer"), "no answer")

    def answered(self, call: Call) -> None:
        """An inbound call is answered by its TwiML."""
        if call.status == "ringing":
            self.set_status(call, "in-progress")
            call.start_time = self.now()

    def set_status(self, call: Call, status: str) -> None:
        if call.status != status:
            call.status = status
            call.date_updated = self.now()
            self.record(call, "status", status=status)

    def finish(self, call: Call, status: str = "completed") -> None:
        """The call is over: final status, end time, the `completed` status callback."""
        if not call.is_active:
            return
        if status == "completed" and call.status in ("queued", "ringing") and call.direction != "inbound":
            status = "canceled"
        self.set_status(call, status)
        call.end_time = self.now()
        if isinstance(call.party, Phone):
            call.party.active_calls.discard(call.sid)
        if call.outcome is None:
            call.outcome = "answered" if call.talked else status
        self.status_event(call, "completed")

    def run(self, call: Call, program: Program) -> None:
        if call.program is not None:
            call.program.close()
        call.program = program
        self._step(call, None)

    def _step(self, call: Call, signal: Signal | None) -> None:
        program = call.program
        try:
            wait = program.throw(signal) if signal is not None else next(program)
        except StopIteration:
            call.program = None
            self.finish(call, "completed")
            return
        except HungUp as hangup:
            call.program = None
            self.finish(call, hangup.status)
            return
        except ApplicationError as error:
            call.program = None
            self.error(call, error.code, error.message)
            self.finish(call, "completed")
            return
        except Signal as signal_:
            call.program = None
            self.error(call, 11100, f"{type(signal_).__name__} reached a call that could not handle it")
            self.finish(call, "completed")
            return
        call.wait_token += 1
        if wait.seconds is not None:
            token = call.wait_token
            self.scheduler.after(wait.seconds, lambda: self._wake(call, token), "wait")

    def _wake(self, call: Call, token: int) -> None:
        if call.program is not None and call.wait_token == token:
            self._step(call, None)

    def interrupt(self, call: Call, signal: Signal, guard: Callable[[], bool] | None = None) -> None:
        """Throw `signal` into the call's TwiML at the current moment (never from inside another program)."""
        def deliver() -> None:
            if call.program is not None and (guard is None or guard()):
                self._step(call, signal)
        self.scheduler.soon(deliver, type(signal).__name__)

    def hangup(self, call: Call, status: str = "completed", reason: str = "hangup") -> None:
        """The party hangs up (or the app ends the call): at the current moment, wherever the call is."""
        def deliver() -> None:
            if not call.is_active:
                return
            self.record(call, "hangup", reason=reason)
            if call.program is not None:
                self._step(call, HungUp(status, reason))
            else:
                self.finish(call, status)
        self.scheduler.soon(deliver, "hangup")

    def redirect(self, call: Call, url: str | None, method: str = "POST", twiml_text: str | None = None) -> None:
        """REST update with Url or Twiml: the call leaves whatever it is doing for the new TwiML."""
        def deliver() -> None:
            if not call.is_active:
                return
            if call.program is not None:
                self._step(call, Redirect(url, method, twiml=twiml_text, source="rest"))
            else:  # still ringing: the new TwiML runs when it is answered
                call.url, call.method, call.twiml = url, method, twiml_text
        self.scheduler.soon(deliver, "redirect")

    def dequeue(self, queue: Queue, member, url: str, method: str = "POST") -> None:
        """REST update of a queue member: take exactly that caller out of the queue, to the TwiML at `url`."""
        queue.remove(member)  # at once, so that no <Dial><Queue> picks this caller in the meantime
        call = member.call
        self.record(call, "dequeued", queue=queue.friendly_name, url=url)
        self.interrupt(call, Dequeued(url, method, source="dequeue"))

    # -- connections -------------------------------------------------------------------------------

    def pair(self, a: Call, b: Call) -> None:
        """`a` and `b` are being connected: from now on, either hanging up ends it for the other."""
        a.peer, b.peer = b, a

    def connect(self, a: Call, b: Call) -> None:
        """`a` and `b` hear each other."""
        a.peer, b.peer = b, a
        self.record(a, "connected", to=b.sid)
        self.record(b, "connected", to=a.sid)
        self.talking(a)
        self.talking(b)

    def disconnect(self, call: Call) -> None:
        """`call` leaves its two-party connection; the other side learns it at once."""
        peer, call.peer, call.connected_at = call.peer, None, None
        if peer is not None and peer.peer is call:
            peer.peer, peer.connected_at = None, None
            self.interrupt(peer, BridgeEnded())

    def talking(self, call: Call) -> None:
        """`call` now hears someone: its party's talk time (an agent's handle time) starts."""
        if call.connected_at is not None:
            return
        call.connected_at, call.talked = self.now(), True
        party = call.party
        seconds = party.handle_time if isinstance(party, Phone) else getattr(party, "talk_time", None)
        if seconds is not None:
            stamp = call.connected_at
            self.scheduler.after(seconds, lambda: call.connected_at == stamp and self.hangup(call, reason="talk time over"),
                                 "talk time")

    # -- webhooks ----------------------------------------------------------------------------------

    def call_params(self, call: Call) -> dict[str, str]:
        params = {"AccountSid": call.account_sid, "ApiVersion": API_VERSION, "CallSid": call.sid,
                  "CallStatus": call.status, "Direction": call.direction, "From": call.from_, "To": call.to,
                  "Caller": call.from_, "Called": call.to}
        if call.parent_call_sid:
            params["ParentCallSid"] = call.parent_call_sid
        return params

    def webhook(self, call: Call | None, purpose: str, url: str, method: str = "POST",
                params: dict[str, str] | None = None) -> Reply:
        """Send a signed webhook to the app and log it (with the reply) on the call."""
        full = {**(self.call_params(call) if call is not None else {}), **(params or {})}
        signed_url, form, headers = signed_request(self.auth_token, method, url, full)
        reply = self.transport.send(method.upper(), signed_url, form, headers)
        self.record(call, "webhook", purpose=purpose, method=method.upper(), url=url, params=full,
                    status=reply.status, reply=reply.body[:4000])
        return reply

    def fetch(self, call: Call, purpose: str, url: str, method: str = "POST",
              params: dict[str, str] | None = None) -> twiml.Document:
        """Fetch TwiML for the call; a failure is Twilio's "application error" (the call then ends)."""
        reply = self.webhook(call, purpose, url, method, params)
        if not 200 <= reply.status < 300:
            raise ApplicationError(11200, f"HTTP retrieval failure: {reply.status} from {method} {url}")
        return twiml.parse(reply.body, url)

    def status_event(self, call: Call, event: str) -> None:
        if not call.status_callback or event not in call.status_callback_events:
            return
        params = self.call_params(call)
        params.update(CallbackSource="call-progress-events", SequenceNumber=str(call.callback_sequence),
                      Timestamp=rfc2822(self.now()))
        call.callback_sequence += 1
        if event == "initiated":
            params["CallStatus"] = "initiated"
        if event == "completed":
            params["CallDuration"] = str(call.duration())
            params["Duration"] = str(math.ceil(call.duration() / 60))
        self.webhook(call, f"status-callback:{event}", call.status_callback, call.status_callback_method, params)

    # -- the log -----------------------------------------------------------------------------------

    def record(self, call: Call | None, kind: str, **detail) -> None:
        entry = {"at": self.now().strftime("%Y-%m-%dT%H:%M:%S"), "kind": kind, **detail}
        if call is not None:
            entry.setdefault("call_sid", call.sid)
            call.log.append(entry)
        self.log.append(entry)

    def error(self, call: Call | None, code: int, message: str) -> None:
        self.record(call, "error", code=code, message=message)
        self.errors.append({"call_sid": call.sid if call else None, "code": code, "message": message,
                            "at": self.now().strftime("%Y-%m-%dT%H:%M:%S")})
