"""Bad input changes nothing and raises an error with Twilio's code (DESIGN.md rule 7)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from callcenter.routing import (
    DuplicateName,
    InvalidParameter,
    LimitExceeded,
    NotFound,
    queues,
    reservations,
    tasks,
    workers,
    workflows,
    workspaces,
)
from callcenter.routing.models import TaskChannel, Workflow, Workspace

from .conftest import Center

UNKNOWN = {prefix: prefix + "0" * 32 for prefix in ("WS", "WT", "WK", "WW", "WA", "WQ", "WR")}
NOT_JSON = '{"type": "support"'
NOT_AN_OBJECT = ['["support"]', '"support"', "42", "null"]
TOO_LONG = json.dumps({"notes": "x" * 4090})  # 4,102 characters


def routed(center):
    """A queue and a workflow to it, and the queue sid."""
    queue = center.queue()
    center.workflow(default=queue)
    return queue


def assert_twilio_error(err, code, status):
    assert (err.value.code, err.value.status) == (code, status)
    assert err.value.more_info == f"https://www.twilio.com/docs/errors/{code}"


# -- unknown sids ----------------------------------------------------------------------------------

def test_unknown_workspace_is_not_found(center, unchanged):
    with unchanged(), pytest.raises(NotFound) as err:
        tasks.create_task(center.router, UNKNOWN["WS"], attributes="{}")
    assert_twilio_error(err, 20404, 404)


def test_updating_an_unknown_task_is_not_found(center, unchanged):
    with unchanged(), pytest.raises(NotFound) as err:
        tasks.update_task(center.router, center.ws, UNKNOWN["WT"], priority=1)
    assert_twilio_error(err, 20404, 404)


def test_deleting_an_unknown_task_is_not_found(center, unchanged):
    with unchanged(), pytest.raises(NotFound):
        tasks.delete_task(center.router, center.ws, UNKNOWN["WT"])


def test_a_task_of_another_workspace_is_not_found_in_this_one(center, unchanged):
    other = Center(center.router, center.clock)
    other.workflow(default=other.queue())
    task = other.task()
    with unchanged(), pytest.raises(NotFound):
        center.cancel(task)
    assert other.get_task(task).assignment_status == "pending"


def test_updating_an_unknown_worker_is_not_found(center, unchanged):
    with unchanged(), pytest.raises(NotFound) as err:
        workers.update_worker(center.router, center.ws, UNKNOWN["WK"], attributes="{}")
    assert_twilio_error(err, 20404, 404)


def test_creating_a_task_in_an_unknown_workflow_is_not_found(center, unchanged):
    routed(center)
    with unchanged(), pytest.raises(NotFound) as err:
        center.task(workflow_sid=UNKNOWN["WW"])
    assert_twilio_error(err, 20404, 404)


def test_creating_a_worker_in_an_unknown_activity_is_not_found(center, unchanged):
    with unchanged(), pytest.raises(NotFound) as err:
        workers.create_worker(center.router, center.ws, friendly_name="alice", activity_sid=UNKNOWN["WA"])
    assert_twilio_error(err, 20404, 404)


def test_moving_a_worker_to_an_unknown_activity_is_not_found(center, unchanged):
    alice = center.worker("alice")
    with unchanged(), pytest.raises(NotFound):
        workers.update_worker(center.router, center.ws, alice, activity_sid=UNKNOWN["WA"])


def test_updating_an_unknown_queue_is_not_found(center, unchanged):
    with unchanged(), pytest.raises(NotFound) as err:
        queues.update_task_queue(center.router, center.ws, UNKNOWN["WQ"], friendly_name="Sales")
    assert_twilio_error(err, 20404, 404)


def test_updating_an_unknown_reservation_is_not_found(center, unchanged):
    with unchanged(), pytest.raises(NotFound):
        reservations.update_reservation(center.router, center.ws, UNKNOWN["WR"], reservation_status="accepted")


def test_rejecting_into_an_unknown_activity_is_not_found(center, unchanged):
    routed(center)
    center.worker("alice")
    reservation = center.pending_reservation(center.task()).sid
    with unchanged(), pytest.raises(NotFound):
        center.reject(reservation, worker_activity_sid=UNKNOWN["WA"])


def test_workflow_routing_to_an_unknown_queue_is_refused(center, unchanged):
    with unchanged(), pytest.raises(InvalidParameter) as err:
        center.workflow(default=UNKNOWN["WQ"])
    assert UNKNOWN["WQ"] in err.value.message


# -- attributes ------------------------------------------------------------------------------------

def test_task_attributes_that_are_not_json_are_refused(center, unchanged):
    routed(center)
    with unchanged(), pytest.raises(InvalidParameter) as err:
        tasks.create_task(center.router, center.ws, attributes=NOT_JSON)
    assert_twilio_error(err, 20001, 400)


@pytest.mark.parametrize("attributes", ['{"size": NaN}', '{"size": Infinity}', '{"a": [-Infinity]}'])
def test_task_and_worker_attributes_with_numbers_json_has_not_are_refused(center, unchanged, attributes):
    """Python's parser takes NaN and Infinity; saved, they came back out in answers no JSON parser reads."""
    routed(center)
    with unchanged(), pytest.raises(InvalidParameter, match=r"not valid JSON: .*is not a JSON value") as err:
        tasks.create_task(center.router, center.ws, attributes=attributes)
    assert_twilio_error(err, 20001, 400)
    with unchanged(), pytest.raises(InvalidParameter, match="not valid JSON"):
        workers.create_worker(center.router, center.ws, friendly_name="alice", attributes=attributes)


def test_a_workflow_configuration_with_nan_is_refused(center, unchanged):
    queue = center.queue()
    text = json.dumps({"task_routing": {"default_filter": {"queue": queue, "priority": 1}}}).replace("1}", "NaN}")
    with unchanged(), pytest.raises(InvalidParameter, match="not valid JSON"):
        workflows.create_workflow(center.router, center.ws, friendly_name="w", configuration=text)


@pytest.mark.parametrize("attributes", NOT_AN_OBJECT)
def test_task_attributes_that_are_not_an_object_are_refused(center, unchanged, attributes):
    routed(center)
    with unchanged(), pytest.raises(InvalidParameter):
        tasks.create_task(center.router, center.ws, attributes=attributes)


def test_task_attributes_over_4096_characters_exceed_the_limit(center, unchanged):
    routed(center)
    with unchanged(), pytest.raises(LimitExceeded) as err:
        tasks.create_task(center.router, center.ws, attributes=TOO_LONG)
    assert_twilio_error(err, 20001, 400)


def test_task_attributes_of_exactly_4096_characters_are_accepted(center):
    routed(center)
    attributes = json.dumps({"notes": "x" * (4096 - len('{"notes": ""}'))})
    assert len(attributes) == 4096
    task = tasks.create_task(center.router, center.ws, attributes=attributes).sid
    assert center.get_task(task).attributes == attributes


@pytest.mark.parametrize("attributes", [NOT_JSON, "[]", TOO_LONG])
def test_bad_attributes_on_task_update_change_nothing(center, unchanged, attributes):
    routed(center)
    task = center.task({"type": "support"})
    with unchanged(), pytest.raises(InvalidParameter):
        tasks.update_task(center.router, center.ws, task, attributes=attributes)


@pytest.mark.parametrize("attributes", [NOT_JSON, "[]", TOO_LONG])
def test_bad_worker_attributes_on_create_are_refused(center, unchanged, attributes):
    with unchanged(), pytest.raises(InvalidParameter):
        workers.create_worker(center.router, center.ws, friendly_name="alice", attributes=attributes)


@pytest.mark.parametrize("attributes", [NOT_JSON, '"alice"', TOO_LONG])
def test_bad_worker_attributes_on_update_change_nothing(center, unchanged, attributes):
    alice = center.worker("alice", {"skills": ["support"]})
    with unchanged(), pytest.raises(InvalidParameter):
        workers.update_worker(center.router, center.ws, alice, attributes=attributes)


# -- expressions -----------------------------------------------------------------------------------

def test_bad_target_workers_expression_names_the_column(center, unchanged):
    with unchanged(), pytest.raises(InvalidParameter) as err:
        center.queue(target_workers="skills HAS")
    assert "column 11" in err.value.message
    assert_twilio_error(err, 20001, 400)


def test_bad_target_workers_on_queue_update_changes_nothing(center, unchanged):
    queue = center.queue(target_workers="skills HAS 'support'")
    with unchanged(), pytest.raises(InvalidParameter) as err:
        queues.update_task_queue(center.router, center.ws, queue, target_workers="skills HAS 'support' AND")
    assert "column" in err.value.message


def test_bad_filter_expression_in_a_workflow_names_the_column(center, unchanged):
    queue = center.queue()
    with unchanged(), pytest.raises(InvalidParameter) as err:
        center.workflow(filters=[{"filter_friendly_name": "Sales", "expression": "type == ",
                                  "targets": [{"queue": queue}]}], default=queue)
    assert "column" in err.value.message
    assert "Sales" in err.value.message


def test_bad_workflow_configuration_json_is_refused(center, unchanged):
    with unchanged(), pytest.raises(InvalidParameter):
        workflows.create_workflow(center.router, center.ws, friendly_name="Broken", configuration="{task_routing")


# -- numbers out of range --------------------------------------------------------------------------

@pytest.mark.parametrize("priority", [-1, 2_147_483_648, "high", 1.5])
def test_priority_out_of_range_is_refused_on_create(center, unchanged, priority):
    routed(center)
    with unchanged(), pytest.raises(InvalidParameter) as err:
        center.task(priority=priority)
    assert_twilio_error(err, 20001, 400)


@pytest.mark.parametrize("priority", [-1, 2_147_483_648])
def test_priority_out_of_range_is_refused_on_update(center, unchanged, priority):
    routed(center)
    task = center.task()
    with unchanged(), pytest.raises(InvalidParameter):
        tasks.update_task(center.router, center.ws, task, priority=priority)


@pytest.mark.parametrize("timeout", [0, -5, 1_209_601, "soon"])
def test_task_timeout_out_of_range_is_refused(center, unchanged, timeout):
    routed(center)
    with unchanged(), pytest.raises(InvalidParameter):
        center.task(timeout=timeout)


def test_task_timeout_of_two_weeks_is_accepted(center):
    routed(center)
    assert center.get_task(center.task(timeout=1_209_600)).timeout == 1_209_600


@pytest.mark.parametrize("seconds", [0, 86_401])
def test_task_reservation_timeout_out_of_range_is_refused(center, unchanged, seconds):
    queue = center.queue()
    with unchanged(), pytest.raises(InvalidParameter):
        center.workflow(default=queue, task_reservation_timeout=seconds)


@pytest.mark.parametrize("count", [0, 51])
def test_max_reserved_workers_out_of_range_is_refused_on_create(center, unchanged, count):
    with unchanged(), pytest.raises(InvalidParameter):
        center.queue(max_reserved_workers=count)


@pytest.mark.parametrize("count", [0, 51])
def test_max_reserved_workers_out_of_range_is_refused_on_update(center, unchanged, count):
    queue = center.queue()
    with unchanged(), pytest.raises(InvalidParameter):
        queues.update_task_queue(center.router, center.ws, queue, max_reserved_workers=count)


@pytest.mark.parametrize("capacity", [51, -1])
def test_channel_capacity_out_of_range_is_refused(center, unchanged, capacity):
    alice = center.worker("alice")
    with unchanged(), pytest.raises(InvalidParameter) as err:
        workers.update_worker_channel(center.router, center.ws, alice, "voice", capacity=capacity)
    assert_twilio_error(err, 20001, 400)


def test_channel_capacity_of_50_is_accepted(center):
    alice = center.worker("alice")
    workers.update_worker_channel(center.router, center.ws, alice, "voice", capacity=50)
    assert center.channel(alice, "voice").capacity == 50


# -- unknown channels, statuses and parameters ------------------------------------------------------

def test_unknown_task_channel_on_create_is_not_found(center, unchanged):
    routed(center)
    with unchanged(), pytest.raises(NotFound) as err:
        center.task(task_channel="fax")
    assert_twilio_error(err, 20404, 404)


def test_unknown_task_channel_on_update_changes_nothing(center, unchanged):
    routed(center)
    task = center.task()
    with unchanged(), pytest.raises(NotFound):
        tasks.update_task(center.router, center.ws, task, task_channel="fax")


def test_unknown_worker_channel_is_not_found(center, unchanged):
    alice = center.worker("alice")
    with unchanged(), pytest.raises(NotFound):
        workers.update_worker_channel(center.router, center.ws, alice, "fax", capacity=2)


@pytest.mark.parametrize("status", ["assigned", "reserved", "pending", "done"])
def test_assignment_status_that_cannot_be_set_is_refused(center, unchanged, status):
    routed(center)
    task = center.task()
    with unchanged(), pytest.raises(InvalidParameter):
        tasks.update_task(center.router, center.ws, task, assignment_status=status)


def test_status_and_attributes_in_one_update_are_refused(center, unchanged):
    routed(center)
    task = center.task()
    with unchanged(), pytest.raises(InvalidParameter):
        tasks.update_task(center.router, center.ws, task, assignment_status="canceled", attributes='{"a": 1}')


def test_reservation_status_that_cannot_be_set_is_refused(center, unchanged):
    routed(center)
    center.worker("alice")
    reservation = center.pending_reservation(center.task()).sid
    with unchanged(), pytest.raises(InvalidParameter):
        reservations.update_reservation(center.router, center.ws, reservation, reservation_status="timeout")


def test_virtual_start_time_in_the_future_is_refused(center, unchanged):
    routed(center)
    with unchanged(), pytest.raises(InvalidParameter):
        center.task(virtual_start_time=center.clock.now() + timedelta(minutes=1))


def test_unknown_event_type_in_events_filter_is_refused(center, unchanged):
    with unchanged(), pytest.raises(InvalidParameter):
        workspaces.update_workspace(center.router, center.ws, event_callback_url="https://example.com/events",
                                    events_filter="task.created,task.exploded")


# -- names ----------------------------------------------------------------------------------------

def test_duplicate_worker_name_is_refused_case_insensitively(center, unchanged):
    center.worker("Alice")
    with unchanged(), pytest.raises(DuplicateName) as err:
        center.worker("aLICE")
    assert_twilio_error(err, 20409, 409)


def test_renaming_a_worker_to_a_taken_name_changes_nothing(center, unchanged):
    center.worker("alice")
    bob = center.worker("bob")
    with unchanged(), pytest.raises(DuplicateName):
        workers.update_worker(center.router, center.ws, bob, friendly_name="ALICE")


def test_duplicate_activity_name_is_refused(center, unchanged):
    with unchanged(), pytest.raises(DuplicateName):
        center.activity("Available", available=True)


@pytest.mark.parametrize("name", ["", "x" * 65, None])
def test_missing_or_overlong_worker_name_is_refused(center, unchanged, name):
    with unchanged(), pytest.raises(InvalidParameter):
        workers.create_worker(center.router, center.ws, friendly_name=name)


@pytest.mark.parametrize("name", ["ß" * 64, "İ" * 64, "ﬃ" * 64])
def test_a_64_character_worker_name_is_accepted_however_long_it_folds(center, name):
    """Names are unique without regard to case through their case-folded copy, up to three times as long: the
    limit is on the name (it was on the copy too, and a valid name was refused)."""
    alice = center.worker("alice")
    assert workers.create_worker(center.router, center.ws, friendly_name=name).name_key == name.casefold()
    renamed = workers.update_worker(center.router, center.ws, alice, friendly_name="a" + name[1:])
    assert renamed.name_key == "a" + name[1:].casefold()


def test_a_name_that_folds_like_another_workers_is_a_duplicate(center, unchanged):
    center.worker("ß" * 64)
    with unchanged(), pytest.raises(DuplicateName):
        workers.create_worker(center.router, center.ws, friendly_name="ẞ" * 64)  # capital sharp s: "ss" too


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01",
                                    "0001-01-01T00:00:00+14:00"])
def test_a_virtual_start_time_off_the_calendar_in_utc_is_refused(center, unchanged, moment):
    routed(center)
    task = center.task({"type": "support"})
    with unchanged(), pytest.raises(InvalidParameter, match="VirtualStartTime"):
        tasks.create_task(center.router, center.ws, attributes="{}", virtual_start_time=moment)
    with unchanged(), pytest.raises(InvalidParameter, match="VirtualStartTime"):
        tasks.update_task(center.router, center.ws, task, virtual_start_time=moment)


def test_an_update_that_changes_nothing_writes_no_event_and_reloads_nothing(center, unchanged):
    """An empty POST (or a JSON body, which Twilio's form API reads as empty) wrote `workspace.updated`,
    `activity.updated`... events, sent them to the event callback, and made every process reload."""
    queue = routed(center)
    with center.router.read() as session:
        workflow = session.scalars(select(Workflow.sid).where(Workflow.workspace_sid == center.ws)).one()
        channel = session.scalars(select(TaskChannel.sid).where(TaskChannel.workspace_sid == center.ws)).first()
        version = session.get(Workspace, center.ws).config_version
    with unchanged():
        workspaces.update_workspace(center.router, center.ws)
        workspaces.update_workspace(center.router, center.ws, friendly_name="Test Center")  # its name already
        workspaces.update_activity(center.router, center.ws, center.available)
        workspaces.update_task_channel(center.router, center.ws, channel)
        queues.update_task_queue(center.router, center.ws, queue)
        workflows.update_workflow(center.router, center.ws, workflow)
    with center.router.read() as session:
        assert session.get(Workspace, center.ws).config_version == version
