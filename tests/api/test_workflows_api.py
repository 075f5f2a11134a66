"""Workflows through the official twilio SDK."""

from __future__ import annotations

import json

import pytest
from twilio.base.exceptions import TwilioRestException

from callcenter.routing import tasks


@pytest.fixture
def ws(taskrouter):
    return taskrouter.workspaces.create(friendly_name="Flows").sid


@pytest.fixture
def workspace(taskrouter, ws):
    return taskrouter.workspaces(ws)


@pytest.fixture
def queue(workspace):
    return workspace.task_queues.create(friendly_name="Everyone").sid


def to_queue(queue_sid: str) -> str:
    return json.dumps({"task_routing": {"default_filter": {"queue": queue_sid}}})


def test_workflow_create_fetch_update_delete(workspace, queue):
    workflow = workspace.workflows.create(friendly_name="Route", configuration=to_queue(queue),
                                          assignment_callback_url="http://app.local/assign")
    assert workflow.sid.startswith("WW") and len(workflow.sid) == 34
    assert (workflow.task_reservation_timeout, workflow.document_content_type) == (120, "application/json")
    assert json.loads(workflow.configuration) == json.loads(to_queue(queue))
    assert workflow.assignment_callback_url == "http://app.local/assign"
    assert workflow.links["statistics"].endswith(f"/Workflows/{workflow.sid}/Statistics")

    assert workspace.workflows(workflow.sid).fetch().friendly_name == "Route"
    updated = workspace.workflows(workflow.sid).update(friendly_name="Routing", task_reservation_timeout=30,
                                                       fallback_assignment_callback_url="http://app.local/fallback")
    assert (updated.friendly_name, updated.task_reservation_timeout, updated.fallback_assignment_callback_url) == (
        "Routing", 30, "http://app.local/fallback")
    assert updated.assignment_callback_url == "http://app.local/assign"

    assert workspace.workflows(workflow.sid).delete() is True
    with pytest.raises(TwilioRestException) as raised:
        workspace.workflows(workflow.sid).fetch()
    assert (raised.value.status, raised.value.code) == (404, 20404)


def test_update_with_an_empty_callback_url_clears_it(workspace, queue):
    workflow = workspace.workflows.create(friendly_name="Route", configuration=to_queue(queue),
                                          assignment_callback_url="http://app.local/assign")
    assert workspace.workflows(workflow.sid).update(assignment_callback_url="").assignment_callback_url is None


def test_list_filter_by_friendly_name(workspace, queue):
    workspace.workflows.create(friendly_name="Sales", configuration=to_queue(queue))
    workspace.workflows.create(friendly_name="Support", configuration=to_queue(queue))
    assert [w.friendly_name for w in workspace.workflows.list(friendly_name="Support")] == ["Support"]


def test_list_pages_through_every_workflow(workspace, queue, clock):
    for number in range(5):
        workspace.workflows.create(friendly_name=f"Flow {number}", configuration=to_queue(queue))
        clock.advance(1)
    page = workspace.workflows.page(page_size=2)
    assert page.next_page_url.startswith("http://taskrouter.local/v1/Workspaces/")
    assert [w.friendly_name for w in workspace.workflows.stream(page_size=2)] == [f"Flow {n}" for n in range(5)]


def test_configuration_error_names_the_filter_and_target_and_creates_nothing(workspace, queue):
    configuration = json.dumps({"task_routing": {"filters": [
        {"filter_friendly_name": "Spanish", "expression": "language == 'es'",
         "targets": [{"queue": queue, "expression": "worker.level >"}]},
    ]}})
    with pytest.raises(TwilioRestException) as raised:
        workspace.workflows.create(friendly_name="Broken", configuration=configuration)
    assert (raised.value.status, raised.value.code) == (400, 20001)
    assert "filter 'Spanish' target 1" in raised.value.msg and "column" in raised.value.msg
    assert workspace.workflows.list() == []


def test_configuration_naming_a_queue_that_does_not_exist_is_400(workspace):
    missing = "WQ" + "0" * 32
    with pytest.raises(TwilioRestException) as raised:
        workspace.workflows.create(friendly_name="Route", configuration=to_queue(missing))
    assert (raised.value.status, raised.value.code) == (400, 20001)
    assert missing in raised.value.msg and "default_filter" in raised.value.msg


def test_configuration_that_is_not_json_is_400(workspace):
    with pytest.raises(TwilioRestException) as raised:
        workspace.workflows.create(friendly_name="Route", configuration="{task_routing")
    assert (raised.value.status, raised.value.code) == (400, 20001)
    assert "Configuration" in raised.value.msg


def test_missing_configuration_is_400(workspace):
    with pytest.raises(TwilioRestException) as raised:
        workspace.workflows.create(friendly_name="Route", configuration=None)
    assert (raised.value.status, raised.value.code) == (400, 20001)
    assert "Configuration" in raised.value.msg


def test_task_reservation_timeout_0_is_400_and_changes_nothing(workspace, queue):
    with pytest.raises(TwilioRestException) as raised:
        workspace.workflows.create(friendly_name="Route", configuration=to_queue(queue), task_reservation_timeout=0)
    assert (raised.value.status, raised.value.code) == (400, 20001)
    assert workspace.workflows.list() == []
    workflow = workspace.workflows.create(friendly_name="Route", configuration=to_queue(queue))
    with pytest.raises(TwilioRestException) as raised:
        workspace.workflows(workflow.sid).update(friendly_name="Renamed", task_reservation_timeout=0)
    assert (raised.value.status, raised.value.code) == (400, 20001)
    fetched = workspace.workflows(workflow.sid).fetch()
    assert (fetched.friendly_name, fetched.task_reservation_timeout) == ("Route", 120)


def test_assignment_callback_url_must_be_an_absolute_http_url(workspace, queue):
    with pytest.raises(TwilioRestException) as raised:
        workspace.workflows.create(friendly_name="Route", configuration=to_queue(queue),
                                   assignment_callback_url="ftp://app.local/assign")
    assert (raised.value.status, raised.value.code) == (400, 20001)
    assert "AssignmentCallbackUrl" in raised.value.msg


def test_re_evaluate_tasks_moves_waiting_tasks_to_the_new_configuration(router, ws, workspace, queue):
    other = workspace.task_queues.create(friendly_name="Overflow").sid
    workflow = workspace.workflows.create(friendly_name="Route", configuration=to_queue(queue))
    task = tasks.create_task(router, ws, workflow_sid=workflow.sid)

    workspace.workflows(workflow.sid).update(configuration=to_queue(other))
    assert tasks.get_task(router, ws, task.sid).task_queue_sid == queue

    workspace.workflows(workflow.sid).update(configuration=to_queue(other), re_evaluate_tasks=True)
    assert tasks.get_task(router, ws, task.sid).task_queue_sid == other


def test_workflow_still_routing_a_task_cannot_be_deleted(router, ws, workspace, queue):
    workflow = workspace.workflows.create(friendly_name="Route", configuration=to_queue(queue))
    tasks.create_task(router, ws, workflow_sid=workflow.sid)
    with pytest.raises(TwilioRestException) as raised:
        workspace.workflows(workflow.sid).delete()
    assert (raised.value.status, raised.value.code) == (409, 20409)
    assert workspace.workflows(workflow.sid).fetch().sid == workflow.sid


def test_another_account_gets_404_for_every_workflow_operation(workspace, ws, queue, other_client):
    workflow = workspace.workflows.create(friendly_name="Private", configuration=to_queue(queue))
    other = other_client.taskrouter.v1.workspaces(ws)
    for attempt in (lambda: other.workflows(workflow.sid).fetch(),
                    lambda: other.workflows(workflow.sid).update(friendly_name="Mine"),
                    lambda: other.workflows(workflow.sid).delete(),
                    lambda: other.workflows.create(friendly_name="Sneaky", configuration=to_queue(queue))):
        with pytest.raises(TwilioRestException) as raised:
            attempt()
        assert (raised.value.status, raised.value.code) == (404, 20404)
    assert [w.friendly_name for w in workspace.workflows.list()] == ["Private"]
