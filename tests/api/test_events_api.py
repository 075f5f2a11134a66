"""Events (`/Workspaces/{WS}/Events`) through the official twilio SDK: every filter and the time window."""

from __future__ import annotations

import json
import re
from datetime import UTC, timedelta

import pytest
from sqlalchemy import event as sqlalchemy_event

from .test_tasks_api import Center, list_error, rest_error


@pytest.fixture
def center(taskrouter, clock, router):
    return Center(taskrouter, clock, router)


@pytest.fixture
def assigned(center):
    """alice accepted one task: the events of a whole offer exist."""
    center.alice = center.worker("alice")
    center.task_sid = center.task({"type": "support"})
    center.reservation_sid = center.accept(center.task_sid).sid
    return center


def test_events_come_oldest_first_in_the_order_they_were_written(assigned):
    types = assigned.event_types()
    assert types[0] == "workspace.created"
    assert types.index("task.created") < types.index("reservation.created") < types.index("reservation.accepted")
    dates = [event.event_date_ms for event in assigned.ws.events.list()]
    assert dates == sorted(dates)


def test_event_fields(assigned):
    (event,) = assigned.ws.events.list(event_type="reservation.accepted")
    assert event.sid.startswith("EV")
    assert (event.resource_type, event.resource_sid) == ("reservation", assigned.reservation_sid)
    assert event.resource_url.endswith(f"/Tasks/{assigned.task_sid}/Reservations/{assigned.reservation_sid}")
    assert event.event_data["task_sid"] == assigned.task_sid
    assert event.event_data["worker_name"] == "alice"
    assert event.source == "twilio" and event.event_date.tzinfo is not None
    assert event.url == f"http://taskrouter.local/v1/Workspaces/{assigned.ws_sid}/Events/{event.sid}"


def test_fetch_an_event(assigned):
    listed = assigned.ws.events.list(event_type="task.created")[0]
    fetched = assigned.ws.events(listed.sid).fetch()
    assert (fetched.sid, fetched.event_type, fetched.resource_sid) == (listed.sid, "task.created", assigned.task_sid)


def test_fetch_an_unknown_event_is_404(center):
    assert rest_error(lambda: center.ws.events("EV" + "0" * 32).fetch())[:2] == (404, 20404)


def test_an_event_of_another_workspace_is_not_found(center, taskrouter):
    other = taskrouter.workspaces.create(friendly_name="Elsewhere").sid
    event = taskrouter.workspaces(other).events.list()[0]
    assert rest_error(lambda: center.ws.events(event.sid).fetch())[:2] == (404, 20404)


def test_another_account_cannot_read_events(center, other_client):
    other = other_client.taskrouter.v1.workspaces(center.ws_sid)
    assert list_error(lambda: other.events.list())[:2] == (404, 20404)


# -- filters ---------------------------------------------------------------------------------------

def test_filter_by_event_type(assigned):
    other_task = assigned.task()
    found = assigned.ws.events.list(event_type="task.created")
    assert [e.resource_sid for e in found] == [assigned.task_sid, other_task]


def test_filter_by_task_sid(assigned):
    assigned.task()
    types = assigned.event_types(task_sid=assigned.task_sid)
    assert types == ["task.created", "workflow.entered", "workflow.target-matched", "task-queue.entered",
                     "reservation.created", "reservation.accepted"]


def test_filter_by_worker_sid(assigned):
    assigned.worker("bob")
    events = assigned.ws.events.list(worker_sid=assigned.alice)
    assert {e.event_data["worker_sid"] for e in events} == {assigned.alice}
    assert events[0].event_type == "worker.created"
    assert "reservation.accepted" in [e.event_type for e in events]


def test_filter_by_reservation_sid(assigned):
    types = assigned.event_types(reservation_sid=assigned.reservation_sid)
    assert types == ["reservation.created", "reservation.accepted"]


def test_filter_by_task_queue_sid(center):
    sales = center.make_queue("Sales")
    to_sales = center.make_workflow(name="To sales", default=sales)
    center.task()
    sales_task = center.task(workflow_sid=to_sales)
    events = center.ws.events.list(task_queue_sid=sales)
    assert events and {e.event_data.get("task_sid") for e in events if e.resource_type == "task"} == {sales_task}
    assert "task-queue.entered" in [e.event_type for e in events]


def test_filter_by_workflow_sid(center):
    other_flow = center.make_workflow(name="Other", default=center.queue)
    center.task()
    theirs = center.task(workflow_sid=other_flow)
    task_events = [e for e in center.ws.events.list(workflow_sid=other_flow) if e.event_type == "task.created"]
    assert [e.resource_sid for e in task_events] == [theirs]


def test_filter_by_task_channel_unique_name_or_sid(center):
    voice = center.task(task_channel="voice")
    center.task(task_channel="sms")
    by_name = center.ws.events.list(task_channel="voice", event_type="task.created")
    assert [e.resource_sid for e in by_name] == [voice]
    channel_sid = center.fetch(voice).task_channel_sid
    by_sid = center.ws.events.list(task_channel=channel_sid, event_type="task.created")
    assert [e.resource_sid for e in by_sid] == [voice]


def test_filter_by_an_unknown_task_channel_matches_nothing(center):
    center.task()
    assert center.ws.events.list(task_channel="carrier-pigeon") == []


def test_filter_by_sid(assigned):
    wanted = assigned.ws.events.list(event_type="reservation.created")[0]
    assert [e.sid for e in assigned.ws.events.list(sid=wanted.sid)] == [wanted.sid]


def test_filters_combine(assigned):
    found = assigned.ws.events.list(task_sid=assigned.task_sid, worker_sid=assigned.alice,
                                    event_type="reservation.accepted")
    assert [e.resource_sid for e in found] == [assigned.reservation_sid]


# -- the time window -------------------------------------------------------------------------------

def test_default_window_is_the_last_15_minutes(center, clock):
    old = center.task()
    clock.advance(16 * 60)
    recent = center.task()
    created = [e.resource_sid for e in center.ws.events.list(event_type="task.created")]
    assert created == [recent]
    assert old not in created


def test_minutes_widens_the_window(center, clock):
    old = center.task()
    clock.advance(16 * 60)
    recent = center.task()
    created = [e.resource_sid for e in center.ws.events.list(event_type="task.created", minutes=30)]
    assert created == [old, recent]


def test_start_date_and_end_date_select_a_window(center, clock):
    start = clock.now().replace(tzinfo=UTC)
    clock.advance(60)
    first = center.task()
    clock.advance(600)
    center.task()
    clock.advance(600)
    found = center.ws.events.list(event_type="task.created", start_date=start,
                                  end_date=start + timedelta(minutes=5))
    assert [e.resource_sid for e in found] == [first]


def test_start_date_alone_reaches_back_beyond_15_minutes(center, clock):
    start = clock.now().replace(tzinfo=UTC)
    first = center.task()
    clock.advance(60 * 60)
    found = center.ws.events.list(event_type="task.created", start_date=start - timedelta(seconds=1),
                                  end_date=clock.now().replace(tzinfo=UTC))
    assert [e.resource_sid for e in found] == [first]


def test_start_date_may_reach_back_beyond_30_days(center, clock):
    """Twilio only redacts the task attributes of events past 30 days; here they are kept as long as their task."""
    start = clock.now().replace(tzinfo=UTC)
    first = center.task()
    clock.advance(31 * 24 * 3600)
    found = center.ws.events.list(event_type="task.created", start_date=start - timedelta(seconds=1))
    assert [e.resource_sid for e in found] == [first]


def test_minutes_may_reach_back_beyond_43200(center, clock):
    first = center.task()
    clock.advance(45 * 24 * 3600)
    found = center.ws.events.list(event_type="task.created", minutes=46 * 24 * 60)
    assert [e.resource_sid for e in found] == [first]


def test_minutes_reaching_back_before_year_one_reads_every_event(center):
    first = center.task()
    found = center.ws.events.list(event_type="task.created", minutes=2_147_483_647)
    assert [e.resource_sid for e in found] == [first]


def test_minutes_beyond_32_bits_is_refused(center):
    status, code, message = list_error(lambda: center.ws.events.list(minutes=2_147_483_648))
    assert (status, code) == (400, 20001) and "Minutes" in message


def test_an_end_date_in_year_one_is_an_empty_window(center, http):
    from .test_tasks_api import AUTH, URL

    center.task()
    response = http.request("GET", f"{URL}/Workspaces/{center.ws_sid}/Events", auth=AUTH,
                            params={"EndDate": "0001-01-01T00:05:00Z"})
    assert response.status_code == 200 and json.loads(response.text)["events"] == []


def test_a_start_date_in_the_future_is_refused(center, clock):
    start = clock.now().replace(tzinfo=UTC) + timedelta(minutes=1)
    status, code, message = list_error(lambda: center.ws.events.list(start_date=start))
    assert (status, code, message) == (400, 20001, "StartDate must not be in the future")


def test_minutes_with_dates_is_refused(center, clock):
    start = clock.now().replace(tzinfo=UTC) - timedelta(minutes=5)
    assert list_error(lambda: center.ws.events.list(minutes=5, start_date=start))[:2] == (400, 20001)


def test_minutes_that_is_not_a_number_is_refused(center):
    status, code, message = list_error(lambda: center.ws.events.list(minutes="lots"))
    assert (status, code) == (400, 20001) and "Minutes" in message


def test_a_malformed_start_date_is_refused(center, http):
    from .test_tasks_api import AUTH, URL

    # The SDK serializes a datetime itself; a hand-written query string is how a bad date arrives.
    response = http.request("GET", f"{URL}/Workspaces/{center.ws_sid}/Events", params={"StartDate": "yesterday"},
                            auth=AUTH)
    assert response.status_code == 400 and json.loads(response.text)["code"] == 20001


# -- paging ----------------------------------------------------------------------------------------

def test_events_page_in_order_with_stable_tokens(assigned):
    everything = [e.sid for e in assigned.ws.events.list()]
    page = assigned.ws.events.page(page_size=3)
    assert page.next_page_url is not None
    streamed = []
    for event in assigned.ws.events.stream(page_size=3):
        streamed.append(event.sid)
        if len(streamed) == 3:
            assigned.task()  # new events land after the cursor
    assert streamed[:len(everything)] == everything
    assert len(streamed) == len(set(streamed))


def test_a_stream_of_events_keeps_the_window_of_its_first_page(assigned, clock):
    """Without dates, each page worked out "the last 15 minutes" anew: a stream on a busy workspace kept finding
    newer events (and never ended), and lost the oldest of its window as the minutes passed."""
    everything = [event.sid for event in assigned.ws.events.list()]
    first = assigned.ws.events.page(page_size=3)
    assert "StartDate=" in first.next_page_url and "EndDate=" in first.next_page_url

    clock.advance(600)  # ten minutes on, and more events
    assigned.task()
    rest, page = [], first.next_page()
    while page is not None:
        rest.extend(event.sid for event in page)
        page = page.next_page()

    assert [event.sid for event in first] + rest == everything


def test_reading_one_resources_events_never_scans_the_events_table(assigned, router):
    """The Events list filtered by a sid, and cumulative statistics, search the events' (partial) indexes:
    SQLite's plan of every statement they send that reads events says SEARCH, never SCAN."""
    if router.reader.dialect.name != "sqlite":
        pytest.skip("the query plans checked are SQLite's")
    sent = []

    def record(_conn, _cursor, statement, parameters, _context, _many):
        if " events" in statement:
            sent.append((statement, parameters))

    center = assigned
    engines = {router.reader, router.writer}
    for engine in engines:
        sqlalchemy_event.listen(engine, "before_cursor_execute", record)
    try:
        center.ws.events.list(task_sid=center.task_sid)
        center.ws.events.list(worker_sid=center.alice)
        center.ws.events.list(task_queue_sid=center.queue)
        center.ws.events.list(workflow_sid=center.workflow)
        center.ws.workers(center.alice).statistics().fetch(minutes=60)  # a worker's statistics are cumulative
        center.ws.workers.cumulative_statistics().fetch()
        center.ws.task_queues(center.queue).cumulative_statistics().fetch(split_by_wait_time="5,30")
        center.ws.workflows(center.workflow).cumulative_statistics().fetch()
    finally:
        for engine in engines:
            sqlalchemy_event.remove(engine, "before_cursor_execute", record)
    assert len(sent) >= 8
    by_sid = {"task_sid": "ix_events_task", "worker_sid": "ix_events_worker", "task_queue_sid": "ix_events_queue",
              "workflow_sid": "ix_events_workflow"}
    searched = set()
    with router.reader.connect() as connection:
        for statement, parameters in sent:
            plan = [row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            assert not [line for line in plan if line.startswith("SCAN events")], (statement, plan)
            # A statement that asks for one task's or worker's events reads them off that resource's index,
            # not off the workspace's (which would read every event of the workspace in the window); so does
            # one for a queue's or workflow's events of given types (their indexes lead with the type, so
            # a list of every type is left to the workspace's index and its window).
            where = re.split(r"\sWHERE\s", statement, maxsplit=1)[-1]
            wanted = {index for column, index in by_sid.items() if re.search(rf"events\.{column} (=|IN) ", where)
                      and (column in ("task_sid", "worker_sid") or "events.event_type" in where)}
            used = {index for index in wanted if any(f"USING INDEX {index} " in line or f"COVERING INDEX {index} " in line
                                                     for line in plan)}
            assert used or not wanted, (statement, parameters, plan)
            searched |= used
    assert searched == set(by_sid.values())
