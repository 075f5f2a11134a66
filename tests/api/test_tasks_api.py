"""Tasks through the official twilio SDK: the canonical lifecycle, every list filter, ordering, paging, ETags.

`Center` builds a small contact center through the SDK only; the Reservations and Events tests
reuse it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException

from .conftest import ACCOUNT_SID, AUTH_TOKEN

URL = "http://taskrouter.local/v1"
AUTH = (ACCOUNT_SID, AUTH_TOKEN)


class Center:
    """A workspace with a `Busy` activity, a `Support` queue for everyone and a workflow routing to it."""

    def __init__(self, taskrouter, clock, router, *, multi_task_enabled=True, reservation_timeout=30, **queue_options):
        self.taskrouter, self.clock, self.router = taskrouter, clock, router
        self.ws_sid = taskrouter.workspaces.create(friendly_name="Support Center",
                                                   multi_task_enabled=multi_task_enabled).sid
        self.ws = taskrouter.workspaces(self.ws_sid)
        self.activities = {a.friendly_name: a.sid for a in self.ws.activities.list()}
        self.activities["Busy"] = self.ws.activities.create(friendly_name="Busy", available=False).sid
        self.queue = self.make_queue("Support", **queue_options)
        self.workflow = self.make_workflow(default=self.queue, task_reservation_timeout=reservation_timeout)

    # -- building ---------------------------------------------------------------------------------
    def make_queue(self, name, target_workers="1==1", **options):
        return self.ws.task_queues.create(friendly_name=name, target_workers=target_workers, **options).sid

    def make_workflow(self, filters=(), default=None, name="Routing", **options):
        config = {"task_routing": {"filters": list(filters)}}
        if default:
            config["task_routing"]["default_filter"] = {"queue": default}
        return self.ws.workflows.create(friendly_name=name, configuration=json.dumps(config), **options).sid

    def worker(self, name, attributes=None, available=True):
        activity = self.activities["Available" if available else "Offline"]
        return self.ws.workers.create(friendly_name=name, activity_sid=activity,
                                      attributes=json.dumps(attributes or {})).sid

    def task(self, attributes=None, **options):
        options.setdefault("workflow_sid", self.workflow)
        return self.ws.tasks.create(attributes=json.dumps(attributes or {}), **options).sid

    # -- acting and looking -----------------------------------------------------------------------
    def advance(self, seconds):
        self.clock.advance(seconds)
        return self.router.run_due_timers()

    def fetch(self, task_sid):
        return self.ws.tasks(task_sid).fetch()

    def reservations(self, task_sid, **filters):
        return self.ws.tasks(task_sid).reservations.list(**filters)

    def pending_reservation(self, task_sid):
        found = self.reservations(task_sid, reservation_status="pending")
        assert len(found) == 1, f"expected one pending reservation, found {len(found)}"
        return found[0]

    def accept(self, task_sid):
        reservation = self.pending_reservation(task_sid)
        return self.ws.tasks(task_sid).reservations(reservation.sid).update(reservation_status="accepted")

    def activity_name(self, worker_sid):
        return self.ws.workers(worker_sid).fetch().activity_name

    def channel(self, worker_sid, unique_name="default"):
        return next(c for c in self.ws.workers(worker_sid).worker_channels.list()
                    if c.task_channel_unique_name == unique_name)

    def event_types(self, **filters):
        return [event.event_type for event in self.ws.events.list(**filters)]


@pytest.fixture
def center(taskrouter, clock, router):
    return Center(taskrouter, clock, router)


def rest_error(attempt) -> tuple[int, int, str]:
    with pytest.raises(TwilioRestException) as raised:
        attempt()
    return raised.value.status, raised.value.code, raised.value.msg


def list_error(attempt) -> tuple[int, int, str]:
    """The SDK turns a failed page into a plain TwilioException carrying the response: read it."""
    with pytest.raises(TwilioException) as raised:
        attempt()
    response = raised.value.args[1]
    body = json.loads(response.text)
    return response.status_code, body["code"], body["message"]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the canonical sequence (taskrouter.md §11.1) ---------------------------------------------------

def test_canonical_sequence_from_task_creation_to_completion(center):
    alice = center.worker("alice")

    created = center.ws.tasks.create(workflow_sid=center.workflow, attributes=json.dumps({"type": "support"}))
    assert created.sid.startswith("WT") and created.assignment_status == "reserved"
    reservation = center.pending_reservation(created.sid)
    assert (reservation.worker_sid, reservation.worker_name) == (alice, "alice")
    assert center.channel(alice).available_capacity_percentage == 0

    accepted = center.ws.tasks(created.sid).reservations(reservation.sid).update(reservation_status="accepted")
    assert accepted.reservation_status == "accepted"
    assert center.fetch(created.sid).assignment_status == "assigned"
    assert center.channel(alice).assigned_tasks == 1

    completed = center.ws.tasks(created.sid).update(assignment_status="completed", reason="call ended")
    assert (completed.assignment_status, completed.reason) == ("completed", "call ended")
    assert center.ws.tasks(created.sid).reservations(reservation.sid).fetch().reservation_status == "completed"
    channel = center.channel(alice)
    assert (channel.assigned_tasks, channel.available_capacity_percentage) == (0, 100)
    assert center.event_types(task_sid=created.sid) == [
        "task.created", "workflow.entered", "workflow.target-matched", "task-queue.entered",
        "reservation.created", "reservation.accepted", "task.completed", "reservation.completed",
    ]


def test_freed_capacity_takes_the_next_waiting_task(center):
    alice = center.worker("alice")
    first, second = center.task(), center.task()
    assert center.fetch(second).assignment_status == "pending"
    center.accept(first)
    center.ws.tasks(first).update(assignment_status="completed", reason="done")
    assert center.pending_reservation(second).worker_sid == alice


# -- create ----------------------------------------------------------------------------------------

def test_created_task_has_every_field_the_sdk_reads(center):
    task = center.ws.tasks.create(workflow_sid=center.workflow, attributes=json.dumps({"lang": "es"}))
    assert json.loads(task.attributes) == {"lang": "es"}
    assert (task.priority, task.timeout, task.age, task.reason) == (0, 86_400, 0, None)
    assert (task.workflow_sid, task.workflow_friendly_name) == (center.workflow, "Routing")
    assert (task.task_queue_sid, task.task_queue_friendly_name) == (center.queue, "Support")
    assert task.task_channel_unique_name == "default" and task.task_channel_sid.startswith("TC")
    assert task.date_created.tzinfo is not None and task.virtual_start_time == task.date_created
    assert task.addons == "{}" and task.ignore_capacity is False and task.routing_target is None
    assert task.url == f"http://taskrouter.local/v1/Workspaces/{center.ws_sid}/Tasks/{task.sid}"
    assert task.links["reservations"] == f"{task.url}/Reservations"
    assert task.links["task_queue"].endswith(f"/TaskQueues/{center.queue}")


def test_create_with_priority_timeout_channel_and_virtual_start_time(center, clock):
    start = clock.now() - timedelta(hours=1)
    task = center.ws.tasks.create(workflow_sid=center.workflow, priority=7, timeout=3600, task_channel="voice",
                                  virtual_start_time=start.replace(tzinfo=UTC))
    assert (task.priority, task.timeout, task.task_channel_unique_name) == (7, 3600, "voice")
    assert iso(task.virtual_start_time) == iso(start)


def test_create_without_workflow_sid_uses_the_only_workflow(center):
    task = center.ws.tasks.create(attributes="{}")
    assert task.workflow_sid == center.workflow


def test_create_with_invalid_attributes_is_refused_and_creates_nothing(center):
    status, code, message = rest_error(lambda: center.ws.tasks.create(workflow_sid=center.workflow,
                                                                      attributes="{not json"))
    assert (status, code) == (400, 20001) and "Attributes" in message
    assert center.ws.tasks.list() == []


def test_create_with_routing_target_is_refused_clearly(center):
    alice = center.worker("alice")
    status, code, message = rest_error(lambda: center.ws.tasks.create(workflow_sid=center.workflow,
                                                                      routing_target=alice))
    assert (status, code) == (400, 20001) and "RoutingTarget" in message
    assert center.ws.tasks.list() == []


def test_create_with_task_queue_sid_is_refused(center):
    status, code, message = rest_error(lambda: center.ws.tasks.create(workflow_sid=center.workflow,
                                                                      task_queue_sid=center.queue))
    assert (status, code) == (400, 20001) and "TaskQueueSid" in message
    assert center.ws.tasks.list() == []


def test_ignore_capacity_without_a_worker_routing_target_is_refused(center):
    status, code, message = rest_error(lambda: center.ws.tasks.create(workflow_sid=center.workflow,
                                                                      ignore_capacity=True))
    assert (status, code) == (400, 20001) and "IgnoreCapacity" in message


def test_create_with_virtual_start_time_in_the_future_is_refused(center, clock):
    future = (clock.now() + timedelta(hours=1)).replace(tzinfo=UTC)
    status, code, _ = rest_error(lambda: center.ws.tasks.create(workflow_sid=center.workflow,
                                                                virtual_start_time=future))
    assert (status, code) == (400, 20001)


def test_create_with_out_of_range_timeout_is_refused(center):
    status, code, message = rest_error(lambda: center.ws.tasks.create(workflow_sid=center.workflow,
                                                                      timeout=2_000_000))
    assert (status, code) == (400, 20001) and "Timeout" in message


def test_create_with_unknown_workflow_is_not_found(center):
    status, code, _ = rest_error(lambda: center.ws.tasks.create(workflow_sid="WW" + "0" * 32))
    assert (status, code) == (404, 20404)


# -- fetch, update, delete -------------------------------------------------------------------------

def test_fetch_sends_the_version_as_etag(center):
    sid = center.task()
    response = center.ws.tasks(sid).fetch_with_http_info()
    assert response.data.sid == sid
    assert response.headers["ETag"].strip('"').isdigit()


def test_fetch_unknown_task_is_404(center):
    status, code, _ = rest_error(lambda: center.ws.tasks("WT" + "0" * 32).fetch())
    assert (status, code) == (404, 20404)


def test_update_attributes_and_priority_changes_the_etag(center):
    sid = center.task({"lang": "en"})
    before = center.ws.tasks(sid).fetch_with_http_info().headers["ETag"]
    updated = center.ws.tasks(sid).update(attributes=json.dumps({"lang": "fr"}), priority=9)
    assert json.loads(updated.attributes) == {"lang": "fr"} and updated.priority == 9
    assert center.ws.tasks(sid).fetch_with_http_info().headers["ETag"] != before


def test_update_with_the_current_etag_succeeds(center):
    sid = center.task()
    etag = center.ws.tasks(sid).fetch_with_http_info().headers["ETag"]
    assert center.ws.tasks(sid).update(if_match=etag, priority=3).priority == 3


def test_update_with_a_stale_etag_is_412_and_changes_nothing(center):
    sid = center.task()
    stale = center.ws.tasks(sid).fetch_with_http_info().headers["ETag"]
    center.ws.tasks(sid).update(priority=1)
    status, code, _ = rest_error(lambda: center.ws.tasks(sid).update(if_match=stale, priority=5))
    assert (status, code) == (412, 412)
    assert center.fetch(sid).priority == 1


@pytest.mark.parametrize("header", ["*", 'W/"{0}"', '"0", "{0}"', '"{0}" , "77"'])
def test_if_match_follows_http_semantics(center, header):
    """`*` matches any existing task, a list matches if any tag does, and a weak tag compares by value."""
    sid = center.task()
    version = center.ws.tasks(sid).fetch_with_http_info().headers["ETag"].strip('"')
    assert center.ws.tasks(sid).update(if_match=header.format(version), priority=4).priority == 4


@pytest.mark.parametrize("header", ['"77"', '"0", "77"', 'W/"77"'])
def test_if_match_without_the_current_version_is_412(center, header):
    sid = center.task()
    status, code, _ = rest_error(lambda: center.ws.tasks(sid).update(if_match=header, priority=5))
    assert (status, code) == (412, 412)
    assert center.fetch(sid).priority == 0


def test_update_status_and_attributes_together_is_refused(center):
    sid = center.task()
    status, code, _ = rest_error(lambda: center.ws.tasks(sid).update(assignment_status="canceled",
                                                                     attributes='{"a": 1}'))
    assert (status, code) == (400, 20001)
    assert center.fetch(sid).assignment_status == "pending"


def test_update_to_an_unknown_status_is_refused(center):
    sid = center.task()
    status, code, _ = rest_error(lambda: center.ws.tasks(sid).update(assignment_status="assigned"))
    assert (status, code) == (400, 20001)


def test_cancel_a_reserved_task_cancels_its_reservation(center):
    center.worker("alice")
    sid = center.task()
    reservation = center.pending_reservation(sid)
    canceled = center.ws.tasks(sid).update(assignment_status="canceled", reason="caller hung up")
    assert (canceled.assignment_status, canceled.reason) == ("canceled", "caller hung up")
    assert center.ws.tasks(sid).reservations(reservation.sid).fetch().reservation_status == "canceled"


def test_canceling_an_assigned_task_is_409_and_changes_nothing(center):
    alice = center.worker("alice")
    sid = center.task()
    center.accept(sid)
    etag = center.ws.tasks(sid).fetch_with_http_info().headers["ETag"]
    status, code, message = rest_error(lambda: center.ws.tasks(sid).update(assignment_status="canceled",
                                                                           reason="oops"))
    assert (status, code) == (409, 20409) and "pending or reserved" in message
    after = center.ws.tasks(sid).fetch_with_http_info()
    assert (after.data.assignment_status, after.headers["ETag"]) == ("assigned", etag)
    assert center.channel(alice).assigned_tasks == 1


def test_completing_a_pending_task_is_409(center):
    sid = center.task()
    status, code, _ = rest_error(lambda: center.ws.tasks(sid).update(assignment_status="completed", reason="x"))
    assert (status, code) == (409, 20409)
    assert center.fetch(sid).assignment_status == "pending"


def test_delete_with_a_stale_etag_is_412_and_keeps_the_task(center, http):
    sid = center.task()
    stale = center.ws.tasks(sid).fetch_with_http_info().headers["ETag"]
    center.ws.tasks(sid).update(priority=2)
    # twilio 9.13's TaskContext.delete(if_match=...) drops the header it builds, so send it directly.
    response = http.request("DELETE", f"{URL}/Workspaces/{center.ws_sid}/Tasks/{sid}",
                            headers={"If-Match": stale}, auth=AUTH)
    assert response.status_code == 412 and json.loads(response.text)["code"] == 412
    assert center.fetch(sid).priority == 2


def test_delete_with_the_current_etag_deletes(center, http):
    sid = center.task()
    etag = center.ws.tasks(sid).fetch_with_http_info().headers["ETag"]
    response = http.request("DELETE", f"{URL}/Workspaces/{center.ws_sid}/Tasks/{sid}",
                            headers={"If-Match": etag}, auth=AUTH)
    assert response.status_code == 204
    assert center.ws.tasks.list() == []


def test_delete_an_assigned_task_gives_the_capacity_back(center):
    alice = center.worker("alice")
    sid = center.task()
    center.accept(sid)
    assert center.ws.tasks(sid).delete() is True
    assert rest_error(lambda: center.fetch(sid))[:2] == (404, 20404)
    assert center.channel(alice).available_capacity_percentage == 100


def test_another_account_cannot_see_or_change_tasks(center, other_client):
    sid = center.task()
    other = other_client.taskrouter.v1.workspaces(center.ws_sid)
    for attempt in (lambda: other.tasks(sid).fetch(), lambda: other.tasks(sid).update(priority=1),
                    lambda: other.tasks(sid).delete(), lambda: other.tasks.create(attributes="{}")):
        assert rest_error(attempt)[:2] == (404, 20404)
    assert list_error(lambda: other.tasks.list())[:2] == (404, 20404)
    assert center.fetch(sid).priority == 0


# -- timers through the API ------------------------------------------------------------------------

def test_task_ttl_cancels_the_waiting_task(center):
    sid = center.task(timeout=60)
    center.advance(61)
    task = center.fetch(sid)
    assert (task.assignment_status, task.reason) == ("canceled", "Task TTL Exceeded")


def test_target_timeout_moves_the_task_to_the_next_queue(center):
    spanish = center.make_queue("Spanish", target_workers="languages HAS 'es'")
    overflow = center.make_queue("Overflow")
    workflow = center.make_workflow(name="Spanish first", filters=[{
        "filter_friendly_name": "everything", "expression": "1==1",
        "targets": [{"queue": spanish, "timeout": 60}, {"queue": overflow}],
    }])
    sid = center.task(workflow_sid=workflow)
    assert center.fetch(sid).task_queue_sid == spanish
    center.advance(61)
    moved = center.fetch(sid)
    assert (moved.task_queue_sid, moved.task_queue_friendly_name) == (overflow, "Overflow")
    assert [t.sid for t in center.ws.tasks.list(task_queue_sid=overflow)] == [sid]


# -- list filters ----------------------------------------------------------------------------------

def sids(tasks) -> set[str]:
    return {task.sid for task in tasks}


def test_list_returns_attributes_as_null_by_default(center):
    center.task({"lang": "en"})
    assert [task.attributes for task in center.ws.tasks.list()] == [None]


def test_list_returns_attributes_when_the_app_is_configured_to(center, app):
    app.config["API_ATTRIBUTES_IN_LISTS"] = True
    center.task({"lang": "en"})
    assert [json.loads(task.attributes) for task in center.ws.tasks.list()] == [{"lang": "en"}]


def test_filter_by_priority(center):
    high, _ = center.task(priority=5), center.task(priority=1)
    assert sids(center.ws.tasks.list(priority=5)) == {high}


def test_filter_by_priority_that_is_not_a_number_is_400(center):
    assert list_error(lambda: center.ws.tasks.list(priority="high"))[:2] == (400, 20001)


def test_filter_by_assignment_status_with_repeated_keys_and_comma_separated(center):
    center.worker("alice")
    reserved, pending = center.task(), center.task()
    canceled = center.task()
    center.ws.tasks(canceled).update(assignment_status="canceled", reason="gone")
    assert sids(center.ws.tasks.list(assignment_status=["pending", "reserved"])) == {reserved, pending}
    assert sids(center.ws.tasks.list(assignment_status=["pending,canceled"])) == {pending, canceled}
    assert sids(center.ws.tasks.list(assignment_status=["reserved"])) == {reserved}


def test_filter_by_unknown_assignment_status_is_400(center):
    status, code, message = list_error(lambda: center.ws.tasks.list(assignment_status=["waiting"]))
    assert (status, code) == (400, 20001) and "waiting" in message


def test_filter_by_workflow_sid_and_workflow_name(center):
    other_workflow = center.make_workflow(name="Other", default=center.queue)
    mine, theirs = center.task(), center.task(workflow_sid=other_workflow)
    assert sids(center.ws.tasks.list(workflow_sid=center.workflow)) == {mine}
    assert sids(center.ws.tasks.list(workflow_name="Other")) == {theirs}
    assert center.ws.tasks.list(workflow_name="Nobody") == []


def test_filter_by_task_queue_sid_and_task_queue_name(center):
    sales = center.make_queue("Sales")
    sales_flow = center.make_workflow(name="To sales", default=sales)
    support_task, sales_task = center.task(), center.task(workflow_sid=sales_flow)
    assert sids(center.ws.tasks.list(task_queue_sid=center.queue)) == {support_task}
    assert sids(center.ws.tasks.list(task_queue_name="Sales")) == {sales_task}


def test_filter_by_evaluate_task_attributes(center):
    spanish = center.task({"lang": "es", "vip": True})
    center.task({"lang": "en"})
    center.task({"lang": "es", "vip": False})
    assert sids(center.ws.tasks.list(evaluate_task_attributes="lang == 'es' AND vip == true")) == {spanish}
    assert center.ws.tasks.list(evaluate_task_attributes="lang == 'de'") == []


def test_filter_by_a_malformed_expression_is_400_naming_the_column(center):
    status, code, message = list_error(lambda: center.ws.tasks.list(evaluate_task_attributes="lang == "))
    assert (status, code) == (400, 20001)
    assert "EvaluateTaskAttributes" in message and "column" in message


def test_filter_by_routing_target_matches_nothing_when_no_task_is_direct_routed(center):
    alice = center.worker("alice")
    center.task()
    assert center.ws.tasks.list(routing_target=alice) == []


def test_filter_by_has_addons(center):
    sid = center.task()
    assert center.ws.tasks.list(has_addons=True) == []
    assert sids(center.ws.tasks.list(has_addons=False)) == {sid}


def test_filters_combine(center):
    wanted = center.task({"lang": "es"}, priority=2)
    center.task({"lang": "es"}, priority=1)
    center.task({"lang": "en"}, priority=2)
    found = center.ws.tasks.list(priority=2, assignment_status=["pending"], evaluate_task_attributes="lang == 'es'")
    assert sids(found) == {wanted}


# -- ordering --------------------------------------------------------------------------------------

def test_default_order_is_date_created_ascending(center, clock):
    created = []
    for _ in range(3):
        created.append(center.task())
        clock.advance(1)
    assert [t.sid for t in center.ws.tasks.list()] == created


def test_ordering_by_priority_descending_then_date_created(center, clock):
    low = center.task(priority=1)
    clock.advance(1)
    high_old = center.task(priority=5)
    clock.advance(1)
    high_new = center.task(priority=5)
    found = center.ws.tasks.list(ordering="Priority:desc,DateCreated:asc")
    assert [t.sid for t in found] == [high_old, high_new, low]


def test_ordering_by_virtual_start_time_descending(center, clock):
    now = clock.now().replace(tzinfo=UTC)
    old = center.task(virtual_start_time=now - timedelta(hours=2))
    newest = center.task(virtual_start_time=now)
    middle = center.task(virtual_start_time=now - timedelta(hours=1))
    assert [t.sid for t in center.ws.tasks.list(ordering="VirtualStartTime:desc")] == [newest, middle, old]


def test_ordering_date_created_with_virtual_start_time_is_refused(center):
    status, code, message = list_error(lambda: center.ws.tasks.list(ordering="DateCreated:asc,VirtualStartTime:desc"))
    assert (status, code) == (400, 20001) and "VirtualStartTime" in message


@pytest.mark.parametrize("ordering", ["Priority", "Priority:up", "Age:asc", "Priority:asc,Priority:desc"])
def test_malformed_ordering_is_refused(center, ordering):
    assert list_error(lambda: center.ws.tasks.list(ordering=ordering))[:2] == (400, 20001)


# -- paging ----------------------------------------------------------------------------------------

def test_pages_follow_the_requested_order(center, clock):
    for priority in (3, 1, 4, 1, 5, 9, 2):
        center.task(priority=priority)
        clock.advance(1)
    page = center.ws.tasks.page(page_size=2, ordering="Priority:desc")
    assert page.next_page_url.startswith(f"http://taskrouter.local/v1/Workspaces/{center.ws_sid}/Tasks?")
    assert "Ordering=Priority%3Adesc" in page.next_page_url
    streamed = [t.priority for t in center.ws.tasks.stream(page_size=2, ordering="Priority:desc")]
    assert streamed == [9, 5, 4, 3, 2, 1, 1]


def test_streaming_while_tasks_are_added_never_repeats_or_skips_existing_tasks(center, clock):
    existing = []
    for _ in range(5):
        existing.append(center.task())
        clock.advance(1)
    seen = []
    for task in center.ws.tasks.stream(page_size=2):
        seen.append(task.sid)
        center.task()  # a new task lands after the cursor: pages already read do not shift
        clock.advance(1)
        if len(seen) == 7:
            break
    assert len(seen) == len(set(seen))
    assert seen[:5] == existing


def test_page_filters_carry_over_to_the_next_page(center):
    wanted = [center.task({"lang": "es"}) for _ in range(3)]
    center.task({"lang": "en"})
    found = [t.sid for t in center.ws.tasks.stream(page_size=1, evaluate_task_attributes="lang == 'es'")]
    assert sorted(found) == sorted(wanted)


def test_a_forged_page_token_is_400(center, http):
    center.task()
    response = http.request("GET", f"{URL}/Workspaces/{center.ws_sid}/Tasks", params={"PageToken": "PTnot-a-token"},
                            auth=AUTH)
    assert response.status_code == 400 and json.loads(response.text)["code"] == 20001
