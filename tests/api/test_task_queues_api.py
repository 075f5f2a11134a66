"""TaskQueues through the official twilio SDK."""

from __future__ import annotations

import json

import pytest
from twilio.base.exceptions import TwilioRestException


@pytest.fixture
def ws(taskrouter):
    return taskrouter.workspaces.create(friendly_name="Queues").sid


@pytest.fixture
def workspace(taskrouter, ws):
    return taskrouter.workspaces(ws)


def activity_sid(workspace, name):
    return next(a.sid for a in workspace.activities.list() if a.friendly_name == name)


def list_error(client, path, **params):
    """A list's error body (the SDK raises a bare TwilioException for a list, without the body)."""
    response = client.request("GET", f"http://taskrouter.local/v1{path}", params=params)
    return response.status_code, json.loads(response.text)


def test_task_queue_create_fetch_update_delete(workspace):
    queue = workspace.task_queues.create(friendly_name="Sales")
    assert queue.sid.startswith("WQ") and len(queue.sid) == 34
    assert (queue.target_workers, queue.max_reserved_workers, queue.task_order) == ("1==1", 1, "FIFO")
    assert queue.url.endswith(f"/Workspaces/{queue.workspace_sid}/TaskQueues/{queue.sid}")
    assert queue.date_created.tzinfo is not None

    assert workspace.task_queues(queue.sid).fetch().friendly_name == "Sales"
    updated = workspace.task_queues(queue.sid).update(friendly_name="Support", target_workers="skill == 'a'",
                                                      max_reserved_workers=3, task_order="LIFO")
    assert (updated.friendly_name, updated.target_workers, updated.max_reserved_workers, updated.task_order) == (
        "Support", "skill == 'a'", 3, "LIFO")

    assert workspace.task_queues(queue.sid).delete() is True
    with pytest.raises(TwilioRestException) as raised:
        workspace.task_queues(queue.sid).fetch()
    assert (raised.value.status, raised.value.code) == (404, 20404)


def test_reservation_and_assignment_activities_are_named_and_linked(workspace):
    unavailable = activity_sid(workspace, "Unavailable")
    queue = workspace.task_queues.create(friendly_name="Calls", reservation_activity_sid=unavailable,
                                         assignment_activity_sid=unavailable)
    assert (queue.reservation_activity_name, queue.assignment_activity_name) == ("Unavailable", "Unavailable")
    assert queue.links["reservation_activity"].endswith(f"/Activities/{unavailable}")


def test_update_with_an_empty_activity_sid_clears_it_and_a_missing_one_keeps_it(workspace):
    unavailable = activity_sid(workspace, "Unavailable")
    queue = workspace.task_queues.create(friendly_name="Calls", reservation_activity_sid=unavailable,
                                         assignment_activity_sid=unavailable)
    updated = workspace.task_queues(queue.sid).update(reservation_activity_sid="")
    assert (updated.reservation_activity_sid, updated.assignment_activity_sid) == (None, unavailable)


def test_list_filter_by_friendly_name(workspace):
    workspace.task_queues.create(friendly_name="Alpha")
    workspace.task_queues.create(friendly_name="Beta")
    assert [q.friendly_name for q in workspace.task_queues.list(friendly_name="Beta")] == ["Beta"]


def test_list_filter_evaluate_worker_attributes_returns_the_queues_that_would_take_the_worker(workspace):
    workspace.task_queues.create(friendly_name="Spanish", target_workers="languages HAS 'es'")
    workspace.task_queues.create(friendly_name="English", target_workers="languages HAS 'en'")
    workspace.task_queues.create(friendly_name="Everyone", target_workers="1==1")
    workspace.task_queues.create(friendly_name="Nobody", target_workers="")
    found = workspace.task_queues.list(evaluate_worker_attributes=json.dumps({"languages": ["es"]}))
    assert sorted(q.friendly_name for q in found) == ["Everyone", "Spanish"]


def test_evaluate_worker_attributes_that_is_not_json_is_400(client, ws, workspace):
    workspace.task_queues.create(friendly_name="Spanish")
    status, body = list_error(client, f"/Workspaces/{ws}/TaskQueues", EvaluateWorkerAttributes="{languages")
    assert (status, body["code"]) == (400, 20001)
    assert "EvaluateWorkerAttributes" in body["message"]


def test_list_filter_by_worker_sid_returns_the_queues_the_worker_is_a_member_of(workspace):
    workspace.task_queues.create(friendly_name="Spanish", target_workers="languages HAS 'es'")
    workspace.task_queues.create(friendly_name="English", target_workers="languages HAS 'en'")
    alice = workspace.workers.create(friendly_name="alice", attributes=json.dumps({"languages": ["en"]}))
    assert [q.friendly_name for q in workspace.task_queues.list(worker_sid=alice.sid)] == ["English"]


def test_list_ordering_by_date_updated(workspace, clock):
    first = workspace.task_queues.create(friendly_name="First")
    clock.advance(1)
    workspace.task_queues.create(friendly_name="Second")
    clock.advance(1)
    workspace.task_queues.create(friendly_name="Third")
    clock.advance(1)
    workspace.task_queues(first.sid).update(task_order="LIFO")
    assert [q.friendly_name for q in workspace.task_queues.list(ordering="DateUpdated:desc")] == [
        "First", "Third", "Second"]
    assert [q.friendly_name for q in workspace.task_queues.list(ordering="DateUpdated:asc")] == [
        "Second", "Third", "First"]


def test_unknown_ordering_is_400(client, ws):
    status, body = list_error(client, f"/Workspaces/{ws}/TaskQueues", Ordering="FriendlyName:asc")
    assert (status, body["code"]) == (400, 20001)


def test_list_pages_through_every_queue(workspace, clock):
    for number in range(5):
        workspace.task_queues.create(friendly_name=f"Queue {number}")
        clock.advance(1)
    page = workspace.task_queues.page(page_size=2)
    assert page.next_page_url.startswith("http://taskrouter.local/v1/Workspaces/")
    assert [q.friendly_name for q in workspace.task_queues.stream(page_size=2)] == [f"Queue {n}" for n in range(5)]


def test_a_page_number_without_a_token_is_that_many_pages_in_and_pages_link_back(workspace, clock):
    """`Page=2` without a PageToken gave page 0's rows labelled page 2; previous_page_url was always null."""
    for number in range(5):
        workspace.task_queues.create(friendly_name=f"Queue {number}")
        clock.advance(1)
    third = workspace.task_queues.page(page_size=2, page_number=2)
    assert [q.friendly_name for q in third] == ["Queue 4"]
    assert third.previous_page_url is not None and third.next_page_url is None
    assert [q.friendly_name for q in third.previous_page()] == ["Queue 2", "Queue 3"]
    assert workspace.task_queues.page(page_size=2).previous_page_url is None


def test_target_workers_syntax_error_names_the_column_and_creates_nothing(workspace):
    with pytest.raises(TwilioRestException) as raised:
        workspace.task_queues.create(friendly_name="Broken", target_workers="languages HAS")
    assert (raised.value.status, raised.value.code) == (400, 20001)
    assert "TargetWorkers" in raised.value.msg and "column 14" in raised.value.msg
    assert workspace.task_queues.list() == []


def test_bad_update_changes_nothing(workspace):
    queue = workspace.task_queues.create(friendly_name="Sales", target_workers="skill == 'a'")
    for bad in ({"max_reserved_workers": 51}, {"task_order": "RANDOM"}, {"target_workers": "skill =="}):
        with pytest.raises(TwilioRestException) as raised:
            workspace.task_queues(queue.sid).update(friendly_name="Renamed", **bad)
        assert (raised.value.status, raised.value.code) == (400, 20001)
    fetched = workspace.task_queues(queue.sid).fetch()
    assert (fetched.friendly_name, fetched.max_reserved_workers, fetched.task_order, fetched.target_workers) == (
        "Sales", 1, "FIFO", "skill == 'a'")


def test_an_activity_of_another_workspace_is_a_bad_parameter(taskrouter, workspace):
    elsewhere = taskrouter.workspaces.create(friendly_name="Elsewhere").sid
    foreign = activity_sid(taskrouter.workspaces(elsewhere), "Unavailable")
    with pytest.raises(TwilioRestException) as raised:
        workspace.task_queues.create(friendly_name="Calls", reservation_activity_sid=foreign)
    assert (raised.value.status, raised.value.code) == (400, 20001)
    assert "ReservationActivitySid" in raised.value.msg
    assert workspace.task_queues.list() == []


def test_duplicate_queue_name_is_a_conflict(workspace):
    workspace.task_queues.create(friendly_name="Sales")
    with pytest.raises(TwilioRestException) as raised:
        workspace.task_queues.create(friendly_name="Sales")
    assert (raised.value.status, raised.value.code) == (409, 20409)


def test_queue_a_workflow_routes_to_cannot_be_deleted(workspace):
    queue = workspace.task_queues.create(friendly_name="Sales")
    workspace.workflows.create(friendly_name="Route", configuration=json.dumps(
        {"task_routing": {"default_filter": {"queue": queue.sid}}}))
    with pytest.raises(TwilioRestException) as raised:
        workspace.task_queues(queue.sid).delete()
    assert (raised.value.status, raised.value.code) == (409, 20409)
    assert workspace.task_queues(queue.sid).fetch().sid == queue.sid


def test_another_account_gets_404_for_every_queue_operation(workspace, ws, other_client):
    queue = workspace.task_queues.create(friendly_name="Private")
    other = other_client.taskrouter.v1.workspaces(ws)
    for attempt in (lambda: other.task_queues(queue.sid).fetch(),
                    lambda: other.task_queues(queue.sid).update(friendly_name="Mine"),
                    lambda: other.task_queues(queue.sid).delete(),
                    lambda: other.task_queues.create(friendly_name="Sneaky")):
        with pytest.raises(TwilioRestException) as raised:
            attempt()
        assert (raised.value.status, raised.value.code) == (404, 20404)
    assert [q.friendly_name for q in workspace.task_queues.list()] == ["Private"]


def test_a_queue_of_another_workspace_is_404(taskrouter, workspace):
    elsewhere = taskrouter.workspaces.create(friendly_name="Elsewhere").sid
    queue = taskrouter.workspaces(elsewhere).task_queues.create(friendly_name="There")
    with pytest.raises(TwilioRestException) as raised:
        workspace.task_queues(queue.sid).fetch()
    assert (raised.value.status, raised.value.code) == (404, 20404)
