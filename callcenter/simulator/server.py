"""The simulator's REST API: the part of Twilio's 2010-04-01 API a voice/SMS app calls.

`create_simulator(...)` returns a Flask app serving Calls, Queues and their Members, and Messages
under `/2010-04-01/Accounts/{AccountSid}/...` with HTTP Basic auth (account sid + auth token), in
Twilio's JSON shapes and error format, so the official `twilio` SDK works against it unchanged. The
`Simulator` behind it is `app.extensions["simulator"]` (also `simulator_of(app)`).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, request

from callcenter.simulator import wire
from callcenter.simulator.carrier import Simulator
from callcenter.simulator.messages import send_message
from callcenter.simulator.queues import Queue
from callcenter.simulator.wire import RestError, not_found

STATUS_CALLBACK_EVENTS = ("initiated", "ringing", "answered", "completed")
_E164 = re.compile(r"^\+?[1-9]\d{1,14}$")
_CLIENT = re.compile(r"^client:[A-Za-z0-9_.@-]{1,256}$")


def create_simulator(app_base_url: str, account_sid: str, auth_token: str, clock=None, transport=None,
                     **settings) -> Flask:
    """A Twilio stand-in for the app at `app_base_url`; see `Simulator` for `settings`."""
    simulator = Simulator(app_base_url, account_sid, auth_token, clock=clock, transport=transport, **settings)
    return rest_app(simulator)


def simulator_of(app: Flask) -> Simulator:
    return app.extensions["simulator"]


def rest_app(sim: Simulator) -> Flask:
    app = Flask("callcenter.simulator")
    app.extensions["simulator"] = sim
    app.json.sort_keys = False

    @app.errorhandler(RestError)
    def rest_error(error: RestError):
        return wire.error_response(error)

    @app.errorhandler(404)
    def unknown_path(error):
        return wire.error_response(not_found())

    @app.errorhandler(405)
    def method_not_allowed(error):
        return wire.error_response(RestError(405, 20004, f"Method {request.method} not allowed"))

    @app.before_request
    def authenticate():
        auth = request.authorization
        if auth is None or auth.username != sim.account_sid or auth.password != sim.auth_token:
            raise RestError(401, 20003, "Authenticate")
        account = (request.view_args or {}).get("account_sid")
        if account is not None and account != sim.account_sid:
            raise not_found()
        sim.requests.append({"at": sim.now().strftime("%Y-%m-%dT%H:%M:%S"), "method": request.method,
                             "path": request.path, "params": request.form.to_dict(flat=False)})

    def route(rule: str, methods: list[str]):
        def register(view):
            app.add_url_rule(f"/2010-04-01/Accounts/<account_sid>{rule}.json", view_func=view, methods=methods)
            app.add_url_rule(f"/2010-04-01/Accounts/<account_sid>{rule}", endpoint=view.__name__ + "_plain",
                             view_func=view, methods=methods)
            return view
        return register

    # -- Recordings: the media at the RecordingUrl (WAV, as Twilio serves it without an extension) ---------

    def recording_media(account_sid, sid):
        recording = sim.recordings.get(sid)
        if recording is None:
            raise not_found()
        return Response(silent_wav(recording["seconds"]), mimetype="audio/x-wav")

    for suffix in ("", ".wav"):
        app.add_url_rule(f"/2010-04-01/Accounts/<account_sid>/Recordings/<sid>{suffix}",
                         endpoint=f"recording_media{suffix}", view_func=recording_media, methods=["GET"])

    # -- Calls -------------------------------------------------------------------------------------

    @route("/Calls", ["POST"])
    def create_call(account_sid):
        form = request.form
        to, from_ = form.get("To", "").strip(), form.get("From", "").strip()
        if not to:
            raise RestError(400, 21201, "No 'To' number is specified")
        if not from_:
            raise RestError(400, 21213, "No 'From' number is specified")
        if not _is_address(to):
            raise RestError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not _is_address(from_):
            raise RestError(400, 21212, f"Invalid 'From' Phone Number: {from_}")
        url, twiml_text = form.get("Url"), form.get("Twiml")
        if not url and not twiml_text:
            raise RestError(400, 21205, "Url parameter is required. Provide a Url or Twiml")
        if url:
            _check_url(url, "Url")
        events = tuple(form.getlist("StatusCallbackEvent"))
        events = tuple(e for raw in events for e in raw.replace(",", " ").split())
        unknown = [e for e in events if e not in STATUS_CALLBACK_EVENTS]
        if unknown:
            raise RestError(400, 21626, f"Invalid StatusCallbackEvent: {', '.join(unknown)}")
        status_callback = form.get("StatusCallback") or None
        if status_callback:
            _check_url(status_callback, "StatusCallback")
        try:
            timeout = min(600, max(1, int(form.get("Timeout", 60))))
        except ValueError:
            raise RestError(400, 21208, "Timeout must be an integer number of seconds") from None
        call = sim.create_call(to, from_, url=url, method=_method(form.get("Method")), twiml_text=twiml_text,
                               status_callback=status_callback, events=events,
                               callback_method=_method(form.get("StatusCallbackMethod")), timeout=timeout)
        return jsonify(wire.call_json(call)), 201

    @route("/Calls", ["GET"])
    def list_calls(account_sid):
        calls = list(sim.calls.values())
        for name, attribute in (("To", "to"), ("From", "from_"), ("Status", "status"), ("ParentCallSid", "parent_call_sid")):
            if request.args.get(name):
                calls = [c for c in calls if getattr(c, attribute) == request.args[name]]
        calls.sort(key=lambda c: c.date_created, reverse=True)
        return wire.page("calls", [wire.call_json(c) for c in calls])

    def find_call(sid: str):
        call = sim.calls.get(sid)
        if call is None:
            raise not_found()
        return call

    @route("/Calls/<sid>", ["GET"])
    def fetch_call(account_sid, sid):
        return jsonify(wire.call_json(find_call(sid)))

    @route("/Calls/<sid>", ["POST"])
    def update_call(account_sid, sid):
        call = find_call(sid)
        form = request.form
        status = form.get("Status")
        if status is not None:
            if status not in ("canceled", "completed"):
                raise RestError(400, 21218, f"Invalid Status: {status}. Use canceled or completed")
            if status == "completed" or call.status in ("queued", "ringing"):
                sim.hangup(call, "completed", reason=f"REST Status={status}")
            return jsonify(wire.call_json(call))
        url, twiml_text = form.get("Url"), form.get("Twiml")
        if not url and not twiml_text:
            raise RestError(400, 21205, "Url parameter is required. Provide a Url, Twiml or Status")
        if url:
            _check_url(url, "Url")
        status_callback = form.get("StatusCallback")
        if status_callback:
            _check_url(status_callback, "StatusCallback")
        if not call.is_active:
            raise RestError(400, 21220, "Call is not in-progress. Cannot redirect.")
        if status_callback:  # replaces the call's own, as Twilio keeps one per call
            call.status_callback, call.status_callback_events = status_callback, ("completed",)
            call.status_callback_method = _method(form.get("StatusCallbackMethod"))
        sim.redirect(call, url, _method(form.get("Method")), twiml_text)
        return jsonify(wire.call_json(call))

    # -- Queues and Members ------------------------------------------------------------------------

    @route("/Queues", ["POST"])
    def create_queue(account_sid):
        name = _friendly_name(request.form.get("FriendlyName"))
        if sim.queue_named(name, create=False) is not None:
            raise RestError(400, 22003, f"A Queue with FriendlyName '{name}' already exists")
        queue = sim.create_queue(name, _max_size(request.form.get("MaxSize", "100")))
        return jsonify(wire.queue_json(queue, sim.now())), 201

    @route("/Queues", ["GET"])
    def list_queues(account_sid):
        queues = sorted(sim.queues.values(), key=lambda q: q.date_created)
        return wire.page("queues", [wire.queue_json(q, sim.now()) for q in queues])

    def find_queue(sid: str) -> Queue:
        queue = sim.queues.get(sid)
        if queue is None:
            raise not_found()
        return queue

    @route("/Queues/<sid>", ["GET"])
    def fetch_queue(account_sid, sid):
        return jsonify(wire.queue_json(find_queue(sid), sim.now()))

    @route("/Queues/<sid>", ["POST"])
    def update_queue(account_sid, sid):
        queue = find_queue(sid)
        if "FriendlyName" in request.form:
            name = _friendly_name(request.form["FriendlyName"])
            other = sim.queue_named(name, create=False)
            if other is not None and other is not queue:
                raise RestError(400, 22003, f"A Queue with FriendlyName '{name}' already exists")
            queue.friendly_name = name
        if "MaxSize" in request.form:
            queue.max_size = _max_size(request.form["MaxSize"])
        queue.date_updated = sim.now()
        return jsonify(wire.queue_json(queue, sim.now()))

    @route("/Queues/<sid>", ["DELETE"])
    def delete_queue(account_sid, sid):
        queue = find_queue(sid)
        if queue.members:
            raise RestError(400, 22004, "Cannot delete a Queue that has members")
        sim.queues.pop(sid, None)
        return "", 204

    @route("/Queues/<sid>/Members", ["GET"])
    def list_members(account_sid, sid):
        queue = find_queue(sid)
        return wire.page("queue_members", [wire.member_json(queue, m, sim.now()) for m in list(queue.members)])

    @route("/Queues/<sid>/Members/<call_sid>", ["GET"])
    def fetch_member(account_sid, sid, call_sid):
        queue = find_queue(sid)
        member = queue.member(call_sid)
        if member is None:
            raise not_found()
        return jsonify(wire.member_json(queue, member, sim.now()))

    @route("/Queues/<sid>/Members/<call_sid>", ["POST"])
    def dequeue_member(account_sid, sid, call_sid):
        queue = find_queue(sid)
        url = request.form.get("Url")
        if not url:
            raise RestError(400, 20001, "Missing required parameter Url in the post body")
        _check_url(url, "Url")
        member = queue.member(call_sid)
        if member is None:
            raise not_found()
        body = wire.member_json(queue, member, sim.now())
        sim.dequeue(queue, member, url, _method(request.form.get("Method")))
        return jsonify(body)

    # -- Messages ----------------------------------------------------------------------------------

    @route("/Messages", ["POST"])
    def create_message(account_sid):
        form = request.form
        to, from_ = form.get("To", "").strip(), form.get("From", "").strip()
        body, media = form.get("Body", ""), form.getlist("MediaUrl")
        if not to:
            raise RestError(400, 21604, "A 'To' phone number is required.")
        if not from_ and not form.get("MessagingServiceSid"):
            raise RestError(400, 21603, "A 'From' phone number is required.")
        if not _is_address(to) or to.startswith("client:"):
            raise RestError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not body and not media:
            raise RestError(400, 21602, "Message body is required.")
        if len(body) > 1600:
            raise RestError(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        status_callback = form.get("StatusCallback") or None
        if status_callback:
            _check_url(status_callback, "StatusCallback")
        message = send_message(sim, to, from_ or sim.default_number, body, status_callback, media)
        return jsonify(wire.message_json(message)), 201

    @route("/Messages", ["GET"])
    def list_messages(account_sid):
        messages = list(sim.messages.values())
        for name, attribute in (("To", "to"), ("From", "from_")):
            if request.args.get(name):
                messages = [m for m in messages if getattr(m, attribute) == request.args[name]]
        messages.sort(key=lambda m: m.date_created, reverse=True)
        return wire.page("messages", [wire.message_json(m) for m in messages])

    @route("/Messages/<sid>", ["GET"])
    def fetch_message(account_sid, sid):
        message = sim.messages.get(sid)
        if message is None:
            raise not_found()
        return jsonify(wire.message_json(message))

    return app


def _is_address(value: str) -> bool:
    return bool(_E164.match(value) or _CLIENT.match(value) or value.startswith("sip:"))


def _check_url(url: str, name: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RestError(400, 21205, f"{name} is not a valid URL: {url}")


def _method(value: str | None) -> str:
    method = (value or "POST").upper()
    if method not in ("GET", "POST"):
        raise RestError(400, 21207, f"Method must be GET or POST, not {value}")
    return method


def _friendly_name(value: str | None) -> str:
    if not value:
        raise RestError(400, 20001, "Missing required parameter FriendlyName in the post body")
    if len(value) > 64:
        raise RestError(400, 20002, "Invalid FriendlyName: it must be between 1 and 64 characters long")
    return value


def _max_size(value: str) -> int:
    try:
        size = int(value)
    except ValueError:
        raise RestError(400, 20001, f"MaxSize must be an integer, not {value}") from None
    if not 1 <= size <= 5000:
        raise RestError(400, 20001, "MaxSize must be between 1 and 5000")
    return size


def silent_wav(seconds: int) -> bytes:
    """A WAV file of `seconds` of silence (8 kHz, 8-bit mono, as a phone line records): the simulator's voicemail."""
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(1)
        audio.setframerate(8000)
        audio.writeframes(b"\x80" * 8000 * max(0, min(seconds, 3600)))
    return buffer.getvalue()
