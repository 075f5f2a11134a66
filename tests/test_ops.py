"""Operations: JSON logs carrying the sids they are about, `/metrics` in Prometheus' format, `/health`."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from callcenter import logs
from callcenter.metrics import render
from callcenter.reservation_counts import OUTCOMES
from callcenter.routing.outbox import Response
from tests.routing.conftest import Center

ACCOUNT_SID = "AC" + "b" * 32
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def app(database_url, clock):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "RUN_SWEEPER": False, "AUTO_MIGRATE": False,
                      "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "token", "LOG_FORMAT": "json"})
    app.extensions["router"].clock = clock
    yield app
    app.extensions["router"].dispose()
    logs.configure_logging("text")


@pytest.fixture
def center(app, clock):
    return Center(app.extensions["router"], clock)


def json_lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


@pytest.fixture
def captured():
    """Everything logged while the test runs, as JSON lines, through the module's own handler."""
    buffer = io.StringIO()
    logs.configure_logging("json", "DEBUG", stream=buffer)
    yield buffer
    logs.configure_logging("text")


# -- logs --------------------------------------------------------------------------------------------

def test_json_line_carries_the_sids_of_its_context_and_only_inside_it(captured):
    log = logging.getLogger("callcenter.test")
    with logs.log_context(workspace_sid="WS1", task_sid="WT1", reservation_sid="WR1", call_sid="CA1"):
        log.info("offering %s", "WT1")
    log.warning("outside")

    inside, outside = json_lines(captured)
    assert inside["message"] == "offering WT1" and inside["level"] == "INFO" and inside["logger"] == "callcenter.test"
    assert {k: inside[k] for k in logs.FIELDS if k in inside} == {
        "workspace_sid": "WS1", "task_sid": "WT1", "reservation_sid": "WR1", "call_sid": "CA1"}
    assert inside["time"].endswith("Z")
    assert not any(field in outside for field in logs.FIELDS)


def test_nested_context_adds_sids_and_restores_the_outer_ones(captured):
    log = logging.getLogger("callcenter.test")
    with logs.log_context(workspace_sid="WS1", task_sid="WT1"):
        with logs.log_context(task_sid="WT2", reservation_sid="WR2"):
            log.info("inner")
        log.info("outer")

    inner, outer = json_lines(captured)
    assert (inner["workspace_sid"], inner["task_sid"], inner["reservation_sid"]) == ("WS1", "WT2", "WR2")
    assert (outer["task_sid"], "reservation_sid" in outer) == ("WT1", False)


def test_exception_is_part_of_the_json_line(captured):
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("callcenter.test").exception("failed")

    [line] = json_lines(captured)
    assert "ValueError: boom" in line["exception"]


def test_text_format_shows_the_sids_in_brackets():
    buffer = io.StringIO()
    logs.configure_logging("text", stream=buffer)
    try:
        with logs.log_context(task_sid="WT9"):
            logging.getLogger("callcenter.test").info("hello")
    finally:
        logs.configure_logging("text")
    assert "INFO callcenter.test [task_sid=WT9] hello" in buffer.getvalue()


def test_configuring_twice_keeps_one_handler_and_refuses_unknown_formats():
    logs.configure_logging("json")
    logs.configure_logging("text")
    assert sum(getattr(h, "_callcenter_handler", False) for h in logging.getLogger().handlers) == 1
    with pytest.raises(ValueError):
        logs.configure_logging("xml")
    with pytest.raises(TypeError), logs.log_context(queue_sid="WQ1"):
        pass


def test_app_with_log_format_json_logs_json(app):
    [handler] = [h for h in logging.getLogger().handlers if getattr(h, "_callcenter_handler", False)]
    assert isinstance(handler.formatter, logs.JsonFormatter)


def test_request_lines_carry_the_sids_of_the_url_and_the_call(app, captured):
    def probe(workspace_sid, task_sid):
        logging.getLogger("callcenter.test").info("inside the request")
        return ""

    app.add_url_rule("/probe/Workspaces/<workspace_sid>/Tasks/<task_sid>", view_func=probe, methods=["POST"])
    app.test_client().post("/probe/Workspaces/WS7/Tasks/WT7", data={"CallSid": "CA7"})

    [line] = [entry for entry in json_lines(captured) if entry["message"] == "inside the request"]
    assert (line["workspace_sid"], line["task_sid"], line["call_sid"]) == ("WS7", "WT7", "CA7")
    assert logs.current_context() == {}  # nothing leaks past the request


def test_callback_failure_lines_carry_task_reservation_call_and_workspace(center, captured):
    queue = center.queue()
    center.workflow(default=queue, assignment_callback_url="https://app.example/assignment")
    center.worker("alice")
    task = center.task({"call_sid": "CA" + "1" * 32})
    center.router.deliverer.transport = lambda url, params, headers, timeout: Response(500, "")

    center.router.deliver_outbox()

    [line] = [entry for entry in json_lines(captured) if "failed (attempt 1)" in entry["message"]]
    assert line["task_sid"] == task
    assert line["reservation_sid"] == center.pending_reservation(task).sid
    assert (line["workspace_sid"], line["call_sid"]) == (center.ws, "CA" + "1" * 32)


# -- metrics -----------------------------------------------------------------------------------------

def scrape(app) -> str:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return response.get_data(as_text=True)


def value(text: str, name: str, **labels) -> float:
    """The value of one sample; 0.0 when the sample is absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_metrics_report_tasks_waiting_age_reservations_and_timer_lag(app, center):
    sales = center.queue("Sales")
    center.workflow(filters=[{"filter_friendly_name": "All", "expression": "1 == 1",
                              "targets": [{"queue": sales, "timeout": 60}]}])
    alice = center.worker("alice")
    offered = center.task()
    center.reject(center.pending_reservation(offered).sid)  # alice stays available, the task waits
    center.set_activity(alice, "Offline")
    center.task()
    center.clock.advance(100)  # the target timeouts are 40 s overdue: no sweeper ran

    text = scrape(app)

    assert value(text, "callcenter_database_up") == 1
    assert value(text, "callcenter_tasks", workspace_sid=center.ws, status="pending") == 2
    assert value(text, "callcenter_tasks", workspace_sid=center.ws, status="assigned") == 0
    assert value(text, "callcenter_task_queue_waiting_tasks", task_queue_sid=sales, task_queue_name="Sales") == 2
    assert value(text, "callcenter_task_queue_oldest_waiting_seconds", task_queue_sid=sales) == 100
    assert value(text, "callcenter_reservations_total", workspace_sid=center.ws, outcome="created") == 1
    assert value(text, "callcenter_reservations_total", workspace_sid=center.ws, outcome="rejected") == 1
    assert value(text, "callcenter_timers_due", kind="target_timeout") == 2
    assert value(text, "callcenter_timer_oldest_due_seconds", kind="target_timeout") == 40

    center.router.run_due_timers()  # the sweeper catches up: nothing overdue, two timers fired 40 s late
    after = scrape(app)
    assert value(after, "callcenter_timer_oldest_due_seconds", kind="target_timeout") == 0
    fired_late = {"kind": "target_timeout", "le": "60.0"}
    on_time = {"kind": "target_timeout", "le": "30.0"}
    assert value(after, "callcenter_timer_lag_seconds_bucket", **fired_late) \
        - value(text, "callcenter_timer_lag_seconds_bucket", **fired_late) == 2
    assert value(after, "callcenter_timer_lag_seconds_bucket", **on_time) \
        == value(text, "callcenter_timer_lag_seconds_bucket", **on_time)


def reservation_events_in_table(router) -> dict:
    """What a full count of the events table says (the old, slow way): the truth the running totals must match."""
    from sqlalchemy import func, select

    from callcenter.reservation_counts import EVENT_TYPES
    from callcenter.routing.models import Event

    with router.read() as session:
        rows = session.execute(select(Event.workspace_sid, Event.event_type, func.count())
                               .where(Event.event_type.in_(EVENT_TYPES))
                               .group_by(Event.workspace_sid, Event.event_type)).all()
    return {(ws, event_type.removeprefix("reservation.")): count for ws, event_type, count in rows}


def a_few_reservations(center) -> None:
    """Three reservations created: one rejected, one accepted and completed, one still pending."""
    center.workflow(default=center.queue())
    center.worker("alice")
    first = center.task()
    center.reject(center.pending_reservation(first).sid)  # not offered to alice again in this step
    center.worker("bob")
    center.accept(center.pending_reservation(first).sid)
    center.complete(first)
    center.task()  # alice


def test_reservation_counter_adds_only_events_written_since_the_last_scrape(app, center):
    from callcenter.reservation_counts import reservation_totals

    a_few_reservations(center)
    first = scrape(app)
    assert value(first, "callcenter_reservations_total", workspace_sid=center.ws, outcome="created") == 3
    assert value(first, "callcenter_reservations_total", workspace_sid=center.ws, outcome="rejected") == 1
    assert value(first, "callcenter_reservations_total", workspace_sid=center.ws, outcome="completed") == 1
    assert 'outcome="rescinded"' in first  # every outcome of a workspace is there, from zero

    again = scrape(app)  # nothing new: the same values, nothing counted twice
    center.task()
    later = scrape(app)

    assert value(again, "callcenter_reservations_total", workspace_sid=center.ws, outcome="created") == 3
    assert value(later, "callcenter_reservations_total", workspace_sid=center.ws, outcome="created") == 4
    assert reservation_totals(center.router) == reservation_events_in_table(center.router)


def test_reservation_counter_never_goes_back_when_old_events_are_deleted(app, center):
    a_few_reservations(center)
    center.advance(31 * 86_400)  # timers fire meanwhile: tasks cleaned up, the pending offer timed out...
    before = scrape(app)
    in_table = sum(reservation_events_in_table(center.router).values())
    assert center.router.purge_expired_events() > 0
    assert sum(reservation_events_in_table(center.router).values()) < in_table  # reservation events went
    after = scrape(app)
    for outcome in OUTCOMES:
        assert value(after, "callcenter_reservations_total", workspace_sid=center.ws, outcome=outcome) == \
            value(before, "callcenter_reservations_total", workspace_sid=center.ws, outcome=outcome), outcome


def test_reservation_counter_is_the_same_from_another_process_and_after_a_restart(app, center, database_url):
    from callcenter.routing import Router

    a_few_reservations(center)
    before = value(scrape(app), "callcenter_reservations_total", workspace_sid=center.ws, outcome="created")
    center.task()  # written after the first process's last scrape
    other = Router(database_url)  # another gunicorn process, or this one restarted: nothing in memory
    try:
        elsewhere = value(render(other).decode(), "callcenter_reservations_total", workspace_sid=center.ws,
                          outcome="created")
    finally:
        other.dispose()
    here = value(scrape(app), "callcenter_reservations_total", workspace_sid=center.ws, outcome="created")

    assert (before, elsewhere, here) == (3, 4, 4)


def test_reservation_counter_catches_up_on_a_long_history_a_bounded_step_per_scrape(app, center, monkeypatch):
    import callcenter.reservation_counts as reservation_counts

    a_few_reservations(center)
    truth = reservation_events_in_table(center.router)
    monkeypatch.setattr(reservation_counts, "MAX_EVENTS_PER_SCRAPE", 3)  # as if millions of events were there
    seen = []
    for _ in range(40):
        seen.append(value(scrape(app), "callcenter_reservations_total", workspace_sid=center.ws, outcome="created"))

    assert seen == sorted(seen) and seen[0] < truth[(center.ws, "created")]  # a counter: it never goes back
    assert reservation_counts.reservation_totals(center.router) == truth


def test_two_scrapes_reading_at_once_count_each_event_once(app, center):
    from callcenter.reservation_counts import add_new_events, read_new_events, reservation_totals

    a_few_reservations(center)
    here, there = read_new_events(center.router), read_new_events(center.router)  # two processes, same moment

    assert add_new_events(center.router, here) is True
    assert add_new_events(center.router, there) is False  # the cursor moved: its counts are not added again
    assert reservation_totals(center.router) == reservation_events_in_table(center.router)


def test_an_event_that_commits_after_a_newer_one_is_still_counted_on_postgresql(app, center, database_url):
    """Workspaces write in parallel on PostgreSQL: a transaction can take an event id and commit after a
    later id of another workspace was counted."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer: ids commit in order")
    from sqlalchemy import create_engine, insert, text
    from sqlalchemy.pool import NullPool

    from callcenter.reservation_counts import reservation_totals
    from callcenter.routing import workspaces
    from callcenter.routing.db import lock_workspace
    from callcenter.routing.models import Event

    other_ws = workspaces.create_workspace(center.router, account_sid=ACCOUNT_SID, friendly_name="Other").sid
    slow = create_engine(database_url, poolclass=NullPool)
    try:
        with slow.connect() as connection:
            transaction = connection.begin()
            lock_workspace(connection, other_ws)  # as the engine does: this workspace's writer, still running
            connection.execute(insert(Event.__table__).values(
                sid="EV" + "0" * 32, workspace_sid=other_ws, account_sid=ACCOUNT_SID, event_type="reservation.created",
                event_date=center.clock.now(), resource_type="reservation", resource_sid="WR" + "0" * 32,
                description="taken first, committed last", event_data="{}"))
            a_few_reservations(center)  # later ids, committed now

            during = scrape(app)
            transaction.commit()
            assert connection.execute(text("SELECT 1")).scalar() == 1
        after = scrape(app)
    finally:
        slow.dispose()

    assert value(during, "callcenter_reservations_total", workspace_sid=other_ws, outcome="created") == 0
    assert value(after, "callcenter_reservations_total", workspace_sid=other_ws, outcome="created") == 1
    assert value(after, "callcenter_reservations_total", workspace_sid=center.ws, outcome="created") == 3
    assert reservation_totals(center.router) == reservation_events_in_table(center.router)


def test_metrics_count_callback_latency_failures_and_abandoned_messages(app, center):
    center.workflow(default=center.queue(), assignment_callback_url="https://app.example/assignment")
    center.worker("alice")
    center.task()
    before = scrape(app)

    def refuse(url, params, headers, timeout):
        raise ConnectionRefusedError("nobody listens")

    center.router.deliverer.transport = refuse
    center.router.deliver_outbox()
    after = scrape(app)

    labels = {"kind": "assignment", "outcome": "failed"}
    assert value(after, "callcenter_callback_duration_seconds_count", **labels) \
        - value(before, "callcenter_callback_duration_seconds_count", **labels) == 1
    assert value(after, "callcenter_callback_failures_total", kind="assignment") \
        - value(before, "callcenter_callback_failures_total", kind="assignment") == 1
    assert value(after, "callcenter_outbox_messages", kind="assignment", status="pending") == 1

    center.router.deliverer.transport = lambda url, params, headers, timeout: Response(200, "{}")
    center.clock.advance(600)
    center.router.deliver_outbox()
    delivered = scrape(app)
    labels = {"kind": "assignment", "outcome": "delivered"}
    assert value(delivered, "callcenter_callback_duration_seconds_count", **labels) \
        - value(after, "callcenter_callback_duration_seconds_count", **labels) == 1
    assert value(delivered, "callcenter_outbox_messages", kind="assignment", status="pending") == 0


def test_abandoned_callback_is_counted_and_shows_as_dead(app, center):
    center.workflow(default=center.queue(), assignment_callback_url="https://app.example/assignment")
    center.worker("alice")
    center.task()
    before = scrape(app)
    center.router.deliverer.transport = lambda url, params, headers, timeout: Response(503, "")
    for _ in range(6):  # an assignment callback has 4 attempts
        center.router.deliver_outbox()
        center.clock.advance(600)
    after = scrape(app)

    assert value(after, "callcenter_callbacks_abandoned_total", kind="assignment") \
        - value(before, "callcenter_callbacks_abandoned_total", kind="assignment") == 1
    assert value(after, "callcenter_outbox_messages", kind="assignment", status="dead") == 1


def test_callback_metrics_of_several_processes_add_up(app, tmp_path, monkeypatch):
    """Each gunicorn process counts its own deliveries; with PROMETHEUS_MULTIPROC_DIR any scrape sums them."""
    code = ("from callcenter.metrics import observe_delivery\n"
            "observe_delivery('failed', 'assignment', 0.2)\nobserve_delivery('delivered', 'event', 0.01)\n")
    directory = tmp_path / "metrics"  # its own: the collector reads every *.db file in it
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))

    text = render(app.extensions["router"]).decode()

    assert value(text, "callcenter_callback_failures_total", kind="assignment") == 2
    assert value(text, "callcenter_callback_duration_seconds_count", kind="event", outcome="delivered") == 2
    assert value(text, "callcenter_database_up") == 1  # the database part is there too


def test_metrics_and_health_report_an_unreachable_database(tmp_path):
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/missing/dir/x.db",
                      "RUN_SWEEPER": False, "AUTO_MIGRATE": False})
    try:
        client = app.test_client()
        health = client.get("/health")
        assert health.status_code == 503 and health.get_json()["status"] == "unavailable"
        assert value(scrape(app), "callcenter_database_up") == 0
    finally:
        app.extensions["router"].dispose()
        logs.configure_logging("text")


def test_health_is_ok_with_a_database(app):
    response = app.test_client().get("/health")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"
