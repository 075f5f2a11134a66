"""The contact-center file: checked with messages that say where, loaded idempotently, never destructive."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import re
import tomllib
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
import responses
from sqlalchemy import select

from callcenter import contact_center
from callcenter.contact_center import SpecError, parse_spec, read_spec
from callcenter.database import get_router
from callcenter.routing import Router
from callcenter.routing.models import Activity, TaskQueue, Worker, Workflow, Workspace
from tests.support import CONTACT_CENTER_FILE, PUBLIC_BASE_URL, TWILIO_API

BASE = Path(CONTACT_CENTER_FILE).read_text()


def test_loading_builds_the_workspace_the_file_describes(app):
    center = contact_center.current(app)
    router = get_router(app)
    with router.read() as session:
        workspace = session.get(Workspace, center.workspace_sid)
        activities = {a.friendly_name: a.available for a in session.scalars(
            select(Activity).where(Activity.workspace_sid == workspace.sid))}
        queues = {q.friendly_name: q.target_workers for q in session.scalars(
            select(TaskQueue).where(TaskQueue.workspace_sid == workspace.sid))}
        workflow = session.get(Workflow, center.workflow_sid)
        workers = {w.friendly_name: w for w in session.scalars(select(Worker).where(Worker.workspace_sid == workspace.sid))}
    assert activities == {"Available": True, "Offline": False, "Unavailable": False, "Break": False,
                          "On a call": False, "Wrap-up": False}
    assert workspace.timeout_activity_sid == center.activity_for("offline")
    assert workspace.event_callback_url == f"{PUBLIC_BASE_URL}/voice/events"
    assert not workspace.multi_task_enabled
    assert queues == {"Sales": "products HAS 'sales'", "Support": "products HAS 'support'"}
    assert workflow.assignment_callback_url == f"{PUBLIC_BASE_URL}/voice/assignment"
    routing = json.loads(workflow.configuration)["task_routing"]
    assert routing["filters"][0]["targets"] == [{"queue": center.queue_sids["Sales"], "timeout": 120}]
    assert routing["default_filter"] == {"queue": center.queue_sids["Support"]}
    assert json.loads(workers["Carol"].attributes) == {"products": ["sales"], "contact_uri": "client:carol",
                                                        "phone": "+15005550003"}
    assert workers["Alice"].activity_sid == center.activity_for("offline")


def test_loading_again_changes_nothing_and_keeps_every_sid(app):
    first = contact_center.current(app)
    again, changes = contact_center.load(app)
    assert changes == []
    assert (again.workspace_sid, again.workflow_sid, again.queue_sids) == (
        first.workspace_sid, first.workflow_sid, first.queue_sids)


def test_editing_the_file_updates_in_place_and_deletes_nothing(app, tmp_path):
    center = contact_center.current(app)
    router = get_router(app)
    alice = _worker(router, center, "Alice")
    from callcenter.routing import workers
    workers.update_worker(router, center.workspace_sid, alice.sid, activity_sid=center.activity_for("available"))
    edited = (BASE.replace("products HAS 'support'", "products HAS 'support' OR products HAS 'billing'")
              .replace('[[agents]]\nname = "Bob"', '[[agents]]\nname = "Dan"\ncontact_uri = "+1 (500) 555-0004"\n\n'
                       '[[agents]]\nname = "Bob"'))
    path = tmp_path / "cc.toml"
    path.write_text(edited)

    updated, changes = contact_center.load(app, str(path))

    assert changes == ["updated queue Support", "created agent Dan"]
    assert updated.queue_sids == center.queue_sids
    assert _worker(router, center, "Alice").activity_sid == center.activity_for("available")  # kept
    assert json.loads(_worker(router, center, "Dan").attributes)["contact_uri"] == "+15005550004"
    # Bob is still there even if a later file forgets him: loading never deletes.
    path.write_text(edited.replace('[[agents]]\nname = "Bob"\ncontact_uri = "+15005550002"\n'
                                   'attributes = { products = ["support"] }\n', ""))
    contact_center.load(app, str(path))
    assert _worker(router, center, "Bob") is not None


def _worker(router, center, name):
    with router.read() as session:
        return session.scalar(select(Worker).where(Worker.workspace_sid == center.workspace_sid,
                                                   Worker.friendly_name == name))


@pytest.mark.parametrize(("edit", "message"), [
    (("products HAS 'sales'", "products HAS"), r"queues\[0\]\.target_workers: .*expected a value after 'HAS'"),
    (('targets = [{ queue = "Sales", timeout = 120 }]', 'targets = [{ queue = "Saels" }]'),
     r"workflow\.filters\[0\]\.targets\[0\]\.queue: 'Saels' is not one of the \[\[queues\]\]"),
    (('contact_uri = "+15005550002"', 'contact_uri = "call bob"'), r"agents\[1\]\.contact_uri: 'call bob' is not"),
    (('queue = "Support"\n\n[voice]', 'queue = "Support"\ntimeout = 60\n\n[voice]'),
     r"workflow\.default_filter\.timeout: .*max_wait_seconds"),
    (("default_option = \"2\"", "default_option = \"7\""), r"menu\.default_option: '7' is not the digit"),
    (("ring_seconds = 12", "ring_secs = 12"), r"voice\.ring_secs: unknown setting"),
    (('role = "busy"', 'role = "lunch"'), r"activities\[3\]\.role: 'lunch' is not one of"),
    (("task_reservation_timeout = 30", "task_reservation_timeout = 20"),
     r"workflow\.task_reservation_timeout: 20 s is shorter than the ring \(12 s\).*at least 30"),
])
def test_a_wrong_file_is_refused_with_where_and_what(tmp_path, edit, message):
    path = tmp_path / "cc.toml"
    path.write_text(BASE.replace(*edit))
    with pytest.raises(SpecError, match=message):
        read_spec(path)


@pytest.mark.parametrize(("edit", "message"), [
    # a value of the wrong type names its setting instead of raising a traceback
    (('supervisors = ["+15005550999"]', 'supervisors = "+15005550999"'), r"voice\.supervisors: a list of phone"),
    (('targets = [{ queue = "Sales", timeout = 120 }]', 'targets = { queue = "Sales" }'),
     r"workflow\.filters\[0\]\.targets: a list of tables"),
    (('target_workers = "products HAS \'sales\'"', "target_workers = 5"),
     r"queues\[0\]\.target_workers: 5 is not a string"),
    (('words = ["sales"]', 'words = "sales"'), r"menu\.options\[0\]\.words: a list of words"),
    (("agent_confirm = true", 'agent_confirm = "no"'), r"voice\.agent_confirm: 'no' is not true or false"),
    (('phone = "+15005550003"', "phone = 15005550003"), r"agents\[2\]\.phone: 15005550003 is not a string"),
    (("task_reservation_timeout = 30", 'task_reservation_timeout = "30"'),
     r"workflow\.task_reservation_timeout: '30' is not a number of seconds"),
    (("ring_seconds = 12", "ring_seconds = 0"), r"voice\.ring_seconds: 0 is not a number of seconds from 5"),
    (("ring_seconds = 12", "ring_seconds = 12\nqueue_max_size = 6000"),
     r"voice\.queue_max_size: 6000 is not a number of callers from 1 to 5000"),
    # a misspelt key would have been ignored: here, everyone would have been put in the queue
    (("target_workers = \"products HAS 'sales'\"", "target_worker = \"products HAS 'sales'\""),
     r"queues\[0\]\.target_worker: unknown setting"),
    # what the engine would refuse half way through loading is refused before anything is written
    (('targets = [{ queue = "Sales", timeout = 120 }]', 'targets = [{ queue = "Sales", timeout = -5 }]'),
     r"workflow: filter 'Sales' target 1 timeout must be between 1 and"),
    (('targets = [{ queue = "Sales", timeout = 120 }]', 'targets = [{ queue = "Sales", order_by = "x" }]'),
     r"workflow: filter 'Sales' target 1 order_by"),
    (('name = "Carol"', f'name = "{"C" * 65}"'), r"agents\[2\]\.name: 65 characters; TaskRouter's"),
    (('attributes = { products = ["sales"] }', f'attributes = {{ notes = "{"n" * 4100}" }}'),
     r"agents\[2\]\.attributes: with contact_uri and phone, the worker.s Attributes is \d+ characters; the limit is 4096"),
    (('name = "Bob"', 'name = "Alice"'), r"agents: two agent entries are named 'Alice'"),
    (('name = "Support"\ntarget', 'name = "Sales"\ntarget'), r"queues: two queue entries are named 'Sales'"),
    (('[workspace]\n', '[workspace]\nprioritize_queue_order = "oldest"\n'),
     r"workspace\.prioritize_queue_order: 'OLDEST' is not"),
])
def test_a_wrong_value_is_refused_before_anything_is_written(app, tmp_path, edit, message):
    assert edit[0] in BASE
    path = tmp_path / "cc.toml"
    path.write_text(BASE.replace(*edit))
    before = _rows(get_router(app))
    with pytest.raises(SpecError, match=message):
        read_spec(path)
    result = app.test_cli_runner().invoke(args=["contact-center", "load", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output and re.search(message, result.output)
    assert _rows(get_router(app)) == before


def test_an_agent_named_in_64_characters_loads_however_long_the_name_folds(app, tmp_path):
    """The limit is on the name, as TaskRouter's; 'ß' folds to 'ss' (it was refused past 32 of them)."""
    name = "ß" * 64
    path = tmp_path / "cc.toml"
    path.write_text(BASE.replace('name = "Carol"', f'name = "{name}"'))
    center, changes = contact_center.load(app, str(path))
    assert f"created agent {name}" in changes
    assert _worker(get_router(app), center, name).friendly_name == name


def _rows(router):
    with router.read() as session:
        return {model.__name__: sorted((row.sid, row.friendly_name) for row in session.scalars(select(model)))
                for model in (Workspace, Activity, TaskQueue, Workflow, Worker)}


def _settings(value, where=()):
    """Every setting of a parsed TOML document, as paths (("queues", 0, "name"), ...)."""
    yield where
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from _settings(child, (*where, key))


WRONG_VALUES = ["x", "", " ", 0, -5, 99_999_999, 1.5, True, [], [1], {}, {"a": 1}, "a" * 5000]


def test_any_setting_given_any_wrong_value_is_refused_by_name_or_loads_whole(sqlite_url):
    """Each setting of the file, given each of these values in turn: reading the file either refuses it
    (SpecError, never another exception) or gives a spec the engine loads without refusing anything."""
    base = tomllib.loads(BASE)
    router = Router(sqlite_url)
    accepted = 0
    try:
        for where in list(_settings(base))[1:]:
            for value in WRONG_VALUES:
                raw = copy.deepcopy(base)
                parent = functools.reduce(lambda node, key: node[key], where[:-1], raw)
                parent[where[-1]] = value
                try:
                    spec = parse_spec(raw)
                except SpecError:
                    continue
                accepted += 1
                # A workspace of its own for each, so that no case finds another's rows.
                spec = dataclasses.replace(spec, workspace_name=f"case {accepted}")
                contact_center.apply(router, spec, account_sid="AC" + "1" * 32, callback_base_url=PUBLIC_BASE_URL)
    finally:
        router.dispose()
    assert accepted > 50  # most wrong names and texts are still names and texts


def test_a_file_that_is_not_toml_names_the_line(tmp_path):
    path = tmp_path / "cc.toml"
    path.write_text("[workspace\nname = 'x'")
    with pytest.raises(SpecError, match="line 1"):
        read_spec(path)


def test_menu_choice_by_key_or_word():
    menu = read_spec(CONTACT_CENTER_FILE).menu
    assert menu.choose("1", None).attributes == {"selected_product": "sales"}
    assert menu.choose(None, "Sales, please").digit == "1"
    assert menu.choose("9", None) is None and menu.choose(None, None) is None
    assert menu.default.digit == "2"


def test_minimal_file_gets_taskrouter_default_activities():
    spec = parse_spec({"workspace": {"name": "Tiny"}, "queues": [{"name": "All"}],
                       "workflow": {"name": "Calls", "default_filter": {"queue": "All"}}})
    roles = {role: name for name, _, role in spec.activities if role}
    assert roles == {"available": "Available", "offline": "Offline"}


def test_cli_load_reports_what_it_did(app):
    result = app.test_cli_runner().invoke(args=["contact-center", "load", CONTACT_CENTER_FILE])
    assert result.exit_code == 0, result.output
    assert "is up to date" in result.output and "created" not in result.output


def test_cli_load_refuses_a_wrong_file_without_changing_anything(app, tmp_path):
    path = tmp_path / "cc.toml"
    path.write_text(BASE.replace("products HAS 'sales'", "products HAS 'sales' AND"))
    result = app.test_cli_runner().invoke(args=["contact-center", "load", str(path)])
    assert result.exit_code != 0 and "queues[0].target_workers" in result.output


def _number_found(mock, number_sid: str) -> None:
    mock.get(f"{TWILIO_API}/IncomingPhoneNumbers.json", json={
        "incoming_phone_numbers": [{"sid": number_sid, "phone_number": "+15005550000"}],
        "meta": {"page": 0, "page_size": 2, "next_page_uri": None, "key": "incoming_phone_numbers"}})
    mock.post(f"{TWILIO_API}/IncomingPhoneNumbers/{number_sid}.json", json={"sid": number_sid})


def _queues(mock, *queues: dict) -> None:
    mock.get(f"{TWILIO_API}/Queues.json", json={
        "queues": list(queues), "meta": {"page": 0, "page_size": 1000, "next_page_uri": None, "key": "queues"}})


def test_configure_number_points_the_webhooks_at_the_public_url_and_sizes_the_callers_queue(app):
    """<Enqueue> makes a missing queue of Twilio's default size (100): the 101st caller was refused (queue-full)."""
    number_sid, queue_sid = "PN" + "7" * 32, "QU" + "7" * 32
    with responses.RequestsMock() as mock:
        _number_found(mock, number_sid)
        _queues(mock)
        mock.post(f"{TWILIO_API}/Queues.json", json={"sid": queue_sid, "friendly_name": "test-callers", "max_size": 1000})
        result = app.test_cli_runner().invoke(args=["twilio", "configure-number", "(500) 555-0000"])
        assert result.exit_code == 0, result.output
        assert "PhoneNumber=%2B15005550000" in mock.calls[0].request.url
        update = dict(parse_qsl(mock.calls[1].request.body))
        created = dict(parse_qsl(mock.calls[3].request.body))
    assert update == {"VoiceUrl": f"{PUBLIC_BASE_URL}/voice/incoming", "VoiceMethod": "POST",
                      "SmsUrl": f"{PUBLIC_BASE_URL}/sms/incoming", "SmsMethod": "POST",
                      "StatusCallback": f"{PUBLIC_BASE_URL}/voice/status", "StatusCallbackMethod": "POST"}
    assert created == {"FriendlyName": "test-callers", "MaxSize": "1000"}
    assert re.search(r"calls to\s+https://cc\.example\.com/voice/incoming", result.output)
    assert "Callers wait in queue 'test-callers', which holds 1000" in result.output


def test_configure_number_resizes_a_callers_queue_of_another_size_and_leaves_others_alone(app):
    number_sid, queue_sid = "PN" + "7" * 32, "QU" + "7" * 32
    with responses.RequestsMock() as mock:
        _number_found(mock, number_sid)
        _queues(mock, {"sid": "QU" + "1" * 32, "friendly_name": "other-app", "max_size": 100},
                {"sid": queue_sid, "friendly_name": "test-callers", "max_size": 100})
        mock.post(f"{TWILIO_API}/Queues/{queue_sid}.json", json={"sid": queue_sid, "max_size": 1000})
        result = app.test_cli_runner().invoke(args=["twilio", "configure-number", "+15005550000"])
        assert result.exit_code == 0, result.output
        assert dict(parse_qsl(mock.calls[-1].request.body)) == {"MaxSize": "1000"}
        assert len(mock.calls) == 4


def test_configure_number_says_when_the_number_is_not_in_the_account(app):
    with responses.RequestsMock() as mock:
        mock.get(f"{TWILIO_API}/IncomingPhoneNumbers.json", json={
            "incoming_phone_numbers": [], "meta": {"page": 0, "page_size": 2, "next_page_uri": None,
                                                   "key": "incoming_phone_numbers"}})
        result = app.test_cli_runner().invoke(args=["twilio", "configure-number", "+15005550123"])
    assert result.exit_code != 0 and "is not a number of account" in result.output


def test_configure_number_needs_the_account_it_changes_the_number_in(app):
    """Without credentials it used to ask Twilio for account "None" and print a connection error."""
    app.config.update(TWILIO_ACCOUNT_SID=None)
    with responses.RequestsMock() as mock:  # any request to Twilio fails the test
        result = app.test_cli_runner().invoke(args=["twilio", "configure-number", "+15005550000"])
        assert not mock.calls
    assert result.exit_code == 1 and "set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN" in result.output


def test_configure_number_refuses_a_base_url_without_its_scheme(app):
    with responses.RequestsMock() as mock:
        result = app.test_cli_runner().invoke(
            args=["twilio", "configure-number", "+15005550000", "--base-url", "abc.ngrok.app"])
        assert not mock.calls
    assert result.exit_code == 1 and "give it as https://abc.ngrok.app" in result.output


def test_configure_number_says_to_try_again_when_twilio_fails(app):
    with responses.RequestsMock() as mock:
        mock.get(f"{TWILIO_API}/IncomingPhoneNumbers.json", status=503, json={"code": 20500, "message": "down"})
        result = app.test_cli_runner().invoke(args=["twilio", "configure-number", "+15005550000"])
    assert result.exit_code == 1 and result.output.rstrip().endswith("run the command again")
    assert "Traceback" not in result.output
