"""Workers, their Channels and their Reservations through the official twilio SDK."""

from __future__ import annotations

import json

import pytest
from twilio.base.exceptions import TwilioRestException

from callcenter.routing import tasks


@pytest.fixture
def ws(taskrouter):
    return taskrouter.workspaces.create(friendly_name="Workers").sid


@pytest.fixture
def workspace(taskrouter, ws):
    return taskrouter.workspaces(ws)


def activity_sid(workspace, name):
    return next(a.sid for a in workspace.activities.list(friendly_name=name))


def list_error(client, path, **params):
    """A list's error body (the SDK raises a bare TwilioException for a list, without the body)."""
    response = client.request("GET", f"http://taskrouter.local/v1{path}", params=params)
    return response.status_code, json.loads(response.text)


def names(workers):
    return sorted(w.friendly_name for w in workers)


# -- Workers ---------------------------------------------------------------------------------------

def test_worker_create_fetch_update_delete(workspace):
    worker = workspace.workers.create(friendly_name="alice", attributes=json.dumps({"languages": ["en"]}))
    assert worker.sid.startswith("WK") and len(worker.sid) == 34
    assert (worker.activity_name, worker.available) == ("Offline", False)
    assert json.loads(worker.attributes) == {"languages": ["en"]}
    assert worker.links["channels"].endswith(f"/Workers/{worker.sid}/Channels")

    assert workspace.workers(worker.sid).fetch().friendly_name == "alice"
    available = activity_sid(workspace, "Available")
    updated = workspace.workers(worker.sid).update(friendly_name="alice2", activity_sid=available,
                                                   attributes=json.dumps({"languages": ["es"]}))
    assert (updated.friendly_name, updated.activity_name, updated.available) == ("alice2", "Available", True)
    assert json.loads(updated.attributes) == {"languages": ["es"]}

    assert workspace.workers(worker.sid).delete() is True
    with pytest.raises(TwilioRestException) as raised:
        workspace.workers(worker.sid).fetch()
    assert (raised.value.status, raised.value.code) == (404, 20404)


def test_worker_created_without_attributes_has_an_empty_object(workspace):
    assert workspace.workers.create(friendly_name="bob").attributes == "{}"


def test_fetch_sends_the_version_as_etag_and_an_update_changes_it(workspace):
    worker = workspace.workers.create(friendly_name="alice")
    etag = workspace.workers(worker.sid).fetch_with_http_info().headers["ETag"]
    workspace.workers(worker.sid).update(attributes=json.dumps({"level": 2}), if_match=etag)
    assert workspace.workers(worker.sid).fetch_with_http_info().headers["ETag"] != etag


def test_update_with_a_stale_if_match_is_412_and_changes_nothing(workspace):
    worker = workspace.workers.create(friendly_name="alice")
    stale = workspace.workers(worker.sid).fetch_with_http_info().headers["ETag"]
    workspace.workers(worker.sid).update(friendly_name="alicia")
    with pytest.raises(TwilioRestException) as raised:
        workspace.workers(worker.sid).update(friendly_name="ali", if_match=stale)
    assert (raised.value.status, raised.value.code) == (412, 412)
    assert workspace.workers(worker.sid).fetch().friendly_name == "alicia"


def test_delete_honours_if_match(client, ws, workspace):
    worker = workspace.workers.create(friendly_name="alice")
    current = workspace.workers(worker.sid).fetch_with_http_info().headers["ETag"]
    url = f"http://taskrouter.local/v1/Workspaces/{ws}/Workers/{worker.sid}"
    # The SDK builds the If-Match header of a delete and then drops it, so this one request is raw.
    stale = client.request("DELETE", url, headers={"If-Match": '"999"'})
    assert (stale.status_code, json.loads(stale.text)["code"]) == (412, 412)
    assert workspace.workers(worker.sid).fetch().sid == worker.sid
    assert client.request("DELETE", url, headers={"If-Match": current}).status_code == 204


def test_list_leaves_attributes_out_unless_configured(app, workspace):
    workspace.workers.create(friendly_name="alice", attributes=json.dumps({"level": 1}))
    assert [w.attributes for w in workspace.workers.list()] == [None]
    app.config["API_ATTRIBUTES_IN_LISTS"] = True
    assert [w.attributes for w in workspace.workers.list()] == ['{"level": 1}']


def test_list_filter_by_activity_name_and_activity_sid(workspace):
    available = activity_sid(workspace, "Available")
    workspace.workers.create(friendly_name="alice", activity_sid=available)
    workspace.workers.create(friendly_name="bob")
    assert names(workspace.workers.list(activity_name="Available")) == ["alice"]
    assert names(workspace.workers.list(activity_sid=available)) == ["alice"]
    assert names(workspace.workers.list(activity_name="Offline")) == ["bob"]


def test_list_filter_by_available(workspace):
    workspace.workers.create(friendly_name="alice", activity_sid=activity_sid(workspace, "Available"))
    workspace.workers.create(friendly_name="bob")
    assert names(workspace.workers.list(available="1")) == ["alice"]
    assert names(workspace.workers.list(available="false")) == ["bob"]


def test_list_filter_by_friendly_name_ignores_case(workspace):
    workspace.workers.create(friendly_name="Alice")
    workspace.workers.create(friendly_name="Bob")
    assert names(workspace.workers.list(friendly_name="alice")) == ["Alice"]


def test_list_filter_by_target_workers_expression_on_attributes(workspace):
    workspace.workers.create(friendly_name="alice", attributes=json.dumps({"languages": ["es", "en"], "level": 3}))
    workspace.workers.create(friendly_name="bob", attributes=json.dumps({"languages": ["en"], "level": 5}))
    assert names(workspace.workers.list(target_workers_expression="languages HAS 'es'")) == ["alice"]
    assert names(workspace.workers.list(target_workers_expression="level > 4 OR languages HAS 'es'")) == [
        "alice", "bob"]


def test_target_workers_expression_can_use_the_built_in_worker_fields(workspace):
    alice = workspace.workers.create(friendly_name="alice", activity_sid=activity_sid(workspace, "Available"))
    workspace.workers.create(friendly_name="bob")
    assert names(workspace.workers.list(target_workers_expression="activity_name IN ['Available', 'Busy']")) == [
        "alice"]
    assert names(workspace.workers.list(target_workers_expression="friendly_name CONTAINS 'ob'")) == ["bob"]
    assert names(workspace.workers.list(target_workers_expression=f"sid == '{alice.sid}'")) == ["alice"]
    assert names(workspace.workers.list(target_workers_expression=f"activity_sid == '{alice.activity_sid}'")) == [
        "alice"]


def test_malformed_target_workers_expression_is_400_naming_the_column(client, ws):
    status, body = list_error(client, f"/Workspaces/{ws}/Workers", TargetWorkersExpression="level >")
    assert (status, body["code"]) == (400, 20001)
    assert "TargetWorkersExpression" in body["message"] and "column 8" in body["message"]


def test_list_filter_by_task_queue_sid_and_name(workspace):
    queue = workspace.task_queues.create(friendly_name="Spanish", target_workers="languages HAS 'es'")
    workspace.workers.create(friendly_name="alice", attributes=json.dumps({"languages": ["es"]}))
    workspace.workers.create(friendly_name="bob", attributes=json.dumps({"languages": ["en"]}))
    assert names(workspace.workers.list(task_queue_sid=queue.sid)) == ["alice"]
    assert names(workspace.workers.list(task_queue_name="Spanish")) == ["alice"]
    assert workspace.workers.list(task_queue_name="No such queue") == []


def test_list_ordering_by_date_status_changed(workspace, clock):
    first = workspace.workers.create(friendly_name="first")
    clock.advance(1)
    workspace.workers.create(friendly_name="second")
    clock.advance(1)
    workspace.workers.create(friendly_name="third")
    clock.advance(1)
    workspace.workers(first.sid).update(activity_sid=activity_sid(workspace, "Unavailable"))
    assert [w.friendly_name for w in workspace.workers.list(ordering="DateStatusChanged:desc")] == [
        "first", "third", "second"]
    assert [w.friendly_name for w in workspace.workers.list(ordering="DateStatusChanged:asc")] == [
        "second", "third", "first"]


def test_unknown_ordering_is_400(client, ws):
    status, body = list_error(client, f"/Workspaces/{ws}/Workers", Ordering="DateCreated:sideways")
    assert (status, body["code"]) == (400, 20001)


def test_list_pages_through_every_worker(workspace, clock):
    for number in range(5):
        workspace.workers.create(friendly_name=f"agent{number}")
        clock.advance(1)
    page = workspace.workers.page(page_size=2)
    assert page.next_page_url.startswith("http://taskrouter.local/v1/Workspaces/")
    assert [w.friendly_name for w in workspace.workers.stream(page_size=2)] == [f"agent{n}" for n in range(5)]


def test_attributes_that_are_not_a_json_object_are_400_and_create_nothing(workspace):
    for bad in ("{languages", "[1, 2]"):
        with pytest.raises(TwilioRestException) as raised:
            workspace.workers.create(friendly_name="alice", attributes=bad)
        assert (raised.value.status, raised.value.code) == (400, 20001)
    assert workspace.workers.list() == []


def test_worker_names_are_unique_ignoring_case(workspace):
    workspace.workers.create(friendly_name="Alice")
    with pytest.raises(TwilioRestException) as raised:
        workspace.workers.create(friendly_name="alice")
    assert (raised.value.status, raised.value.code) == (409, 20409)


def test_a_64_character_name_is_accepted_however_long_it_folds(workspace):
    """Twilio's limit is 64 characters of the name; its case-folded copy may be longer ('ß' folds to 'ss')."""
    name = "Groß" + "e" * 60
    assert workspace.workers.create(friendly_name=name).friendly_name == name
    assert names(workspace.workers.list(friendly_name=name.upper())) == [name]


def test_a_worker_may_be_renamed_to_a_64_character_name_however_long_it_folds(workspace):
    worker = workspace.workers.create(friendly_name="agent")
    name = "İlkay " + "x" * 58
    assert workspace.workers(worker.sid).update(friendly_name=name).friendly_name == name


def test_an_activity_that_is_not_in_the_workspace_is_a_bad_parameter(workspace):
    worker = workspace.workers.create(friendly_name="alice")
    with pytest.raises(TwilioRestException) as raised:
        workspace.workers(worker.sid).update(activity_sid="WA" + "0" * 32)
    assert (raised.value.status, raised.value.code) == (400, 20001)
    assert workspace.workers(worker.sid).fetch().activity_name == "Offline"


def test_another_account_gets_404_for_a_worker_and_its_sub_resources(workspace, ws, other_client):
    worker = workspace.workers.create(friendly_name="alice")
    other = other_client.taskrouter.v1.workspaces(ws)
    for attempt in (lambda: other.workers(worker.sid).fetch(),
                    lambda: other.workers(worker.sid).update(friendly_name="mallory"),
                    lambda: other.workers(worker.sid).delete(),
                    lambda: other.workers(worker.sid).worker_channels("voice").fetch(),
                    lambda: other.workers(worker.sid).worker_channels("voice").update(capacity=5),
                    lambda: other.workers(worker.sid).reservations("WR" + "0" * 32).fetch()):
        with pytest.raises(TwilioRestException) as raised:
            attempt()
        assert (raised.value.status, raised.value.code) == (404, 20404)
    assert workspace.workers(worker.sid).fetch().friendly_name == "alice"


# -- Worker Channels -------------------------------------------------------------------------------

def test_worker_has_one_channel_per_task_channel(workspace):
    worker = workspace.workers.create(friendly_name="alice")
    channels = workspace.workers(worker.sid).worker_channels.list()
    assert sorted(c.task_channel_unique_name for c in channels) == ["chat", "default", "sms", "video", "voice"]
    assert {(c.configured_capacity, c.available, c.available_capacity_percentage, c.assigned_tasks)
            for c in channels} == {(1, True, 100, 0)}


def test_worker_channels_page(workspace):
    worker = workspace.workers.create(friendly_name="alice")
    assert len(list(workspace.workers(worker.sid).worker_channels.stream(page_size=2))) == 5


def test_worker_channel_is_found_by_sid_or_by_task_channel_unique_name(workspace):
    worker = workspace.workers.create(friendly_name="alice")
    voice = workspace.workers(worker.sid).worker_channels("voice").fetch()
    assert voice.sid.startswith("WC") and voice.task_channel_unique_name == "voice"
    assert workspace.workers(worker.sid).worker_channels(voice.sid).fetch().task_channel_unique_name == "voice"


def test_worker_channel_update_sets_capacity_and_availability(workspace):
    worker = workspace.workers.create(friendly_name="alice")
    channel = workspace.workers(worker.sid).worker_channels("chat").update(capacity=3, available=False)
    assert (channel.configured_capacity, channel.available) == (3, False)
    assert workspace.workers(worker.sid).worker_channels(channel.sid).fetch().configured_capacity == 3


def test_worker_channel_capacity_above_50_is_400_and_changes_nothing(workspace):
    worker = workspace.workers.create(friendly_name="alice")
    with pytest.raises(TwilioRestException) as raised:
        workspace.workers(worker.sid).worker_channels("voice").update(capacity=51, available=False)
    assert (raised.value.status, raised.value.code) == (400, 20001)
    voice = workspace.workers(worker.sid).worker_channels("voice").fetch()
    assert (voice.configured_capacity, voice.available) == (1, True)


def test_unknown_worker_channel_is_404(workspace):
    worker = workspace.workers.create(friendly_name="alice")
    with pytest.raises(TwilioRestException) as raised:
        workspace.workers(worker.sid).worker_channels("fax").fetch()
    assert (raised.value.status, raised.value.code) == (404, 20404)


# -- Worker Reservations ---------------------------------------------------------------------------

@pytest.fixture
def fifo(taskrouter):
    """A FIFO workspace (one queue of everyone, one workflow) and an available worker."""
    ws = taskrouter.workspaces.create(friendly_name="Fifo", template="FIFO").sid
    workspace = taskrouter.workspaces(ws)
    worker = workspace.workers.create(friendly_name="alice", activity_sid=activity_sid(workspace, "Available"))
    return workspace, worker.sid


def offer(router, workspace, worker_sid):
    """Create a task (through the engine: Tasks are another module's API) and return the worker's reservation."""
    task = tasks.create_task(router, workspace._solution["sid"], attributes=json.dumps({"call_sid": "CA1"}))
    reservation = workspace.workers(worker_sid).reservations.list(reservation_status="pending")[0]
    assert reservation.task_sid == task.sid
    return reservation


def test_worker_reservations_list_fetch_and_filter(router, fifo):
    workspace, worker = fifo
    reservation = offer(router, workspace, worker)
    assert reservation.sid.startswith("WR")
    assert reservation.url.endswith(f"/Workers/{worker}/Reservations/{reservation.sid}")
    assert workspace.workers(worker).reservations.list(reservation_status="accepted") == []
    fetched = workspace.workers(worker).reservations(reservation.sid).fetch()
    assert (fetched.reservation_status, fetched.worker_name) == ("pending", "alice")


def test_worker_reservations_page(router, fifo):
    workspace, worker = fifo
    workspace.workers(worker).worker_channels("default").update(capacity=3)
    for _ in range(3):
        tasks.create_task(router, workspace._solution["sid"])
    assert len(list(workspace.workers(worker).reservations.stream(page_size=2))) == 3


def test_unknown_reservation_status_filter_is_400(client, router, fifo):
    workspace, worker = fifo
    status, body = list_error(client, f"/Workspaces/{workspace._solution['sid']}/Workers/{worker}/Reservations",
                              ReservationStatus="maybe")
    assert (status, body["code"]) == (400, 20001)


def test_worker_accepts_a_reservation(router, fifo):
    workspace, worker = fifo
    reservation = offer(router, workspace, worker)
    accepted = workspace.workers(worker).reservations(reservation.sid).update(reservation_status="accepted")
    assert accepted.reservation_status == "accepted"
    assert tasks.get_task(router, workspace._solution["sid"], reservation.task_sid).assignment_status == "assigned"


def test_rejecting_with_worker_activity_sid_moves_the_worker(router, fifo):
    workspace, worker = fifo
    reservation = offer(router, workspace, worker)
    unavailable = activity_sid(workspace, "Unavailable")
    rejected = workspace.workers(worker).reservations(reservation.sid).update(reservation_status="rejected",
                                                                              worker_activity_sid=unavailable)
    assert rejected.reservation_status == "rejected"
    assert workspace.workers(worker).fetch().activity_name == "Unavailable"


def test_reservation_etag_and_stale_if_match(router, fifo):
    workspace, worker = fifo
    reservation = offer(router, workspace, worker)
    etag = workspace.workers(worker).reservations(reservation.sid).fetch_with_http_info().headers["ETag"]
    with pytest.raises(TwilioRestException) as raised:
        workspace.workers(worker).reservations(reservation.sid).update(reservation_status="accepted",
                                                                       if_match='"999"')
    assert raised.value.status == 412
    assert workspace.workers(worker).reservations(reservation.sid).fetch().reservation_status == "pending"
    workspace.workers(worker).reservations(reservation.sid).update(reservation_status="accepted", if_match=etag)


def test_a_reservation_of_another_worker_is_404(router, fifo):
    workspace, worker = fifo
    reservation = offer(router, workspace, worker)
    bob = workspace.workers.create(friendly_name="bob").sid
    for attempt in (lambda: workspace.workers(bob).reservations(reservation.sid).fetch(),
                    lambda: workspace.workers(bob).reservations(reservation.sid).update(reservation_status="accepted")):
        with pytest.raises(TwilioRestException) as raised:
            attempt()
        assert (raised.value.status, raised.value.code) == (404, 20404)
    assert workspace.workers(worker).reservations(reservation.sid).fetch().reservation_status == "pending"


def test_setting_a_reservation_back_to_pending_is_400(router, fifo):
    workspace, worker = fifo
    reservation = offer(router, workspace, worker)
    with pytest.raises(TwilioRestException) as raised:
        workspace.workers(worker).reservations(reservation.sid).update(reservation_status="timeout")
    assert (raised.value.status, raised.value.code) == (400, 20001)


def test_dequeue_instruction_reaches_the_engine_with_callback_names(router, fifo):
    workspace, worker = fifo
    reservation = offer(router, workspace, worker)
    seen = []
    router.instruction_handler = lambda tx, **kwargs: seen.append(kwargs["instruction"])
    offline = activity_sid(workspace, "Offline")
    workspace.workers(worker).reservations(reservation.sid).update(
        instruction="dequeue", dequeue_from="+15550001111", dequeue_post_work_activity_sid=offline,
        dequeue_timeout=30, dequeue_record="record-from-answer",
        dequeue_status_callback_url="http://app.local/status",
        dequeue_status_callback_event=["initiated", "completed"])
    assert seen == [{"instruction": "dequeue", "from": "+15550001111", "post_work_activity_sid": offline,
                     "timeout": 30, "record": "record-from-answer", "status_callback_url": "http://app.local/status",
                     "status_callback_events": ["initiated", "completed"]}]


def test_conference_instruction_uses_the_snake_case_of_each_parameter(router, fifo):
    workspace, worker = fifo
    reservation = offer(router, workspace, worker)
    seen = []
    router.instruction_handler = lambda tx, **kwargs: seen.append(kwargs["instruction"])
    workspace.workers(worker).reservations(reservation.sid).update(
        instruction="conference", to="client:alice", from_="+15550001111", end_conference_on_exit=True,
        conference_status_callback_event=["start", "end"], max_participants=3, beep="onEnter")
    assert seen == [{"instruction": "conference", "to": "client:alice", "from": "+15550001111",
                     "end_conference_on_exit": True, "conference_status_callback_event": ["start", "end"],
                     "max_participants": 3, "beep": "onEnter"}]


def test_call_instruction_without_its_url_is_400_and_leaves_the_reservation_pending(router, fifo):
    workspace, worker = fifo
    reservation = offer(router, workspace, worker)
    router.instruction_handler = lambda tx, **kwargs: None
    with pytest.raises(TwilioRestException) as raised:
        workspace.workers(worker).reservations(reservation.sid).update(instruction="call", call_from="+15550001111")
    assert (raised.value.status, raised.value.code) == (400, 20001)
    assert "CallUrl" in raised.value.msg
    assert workspace.workers(worker).reservations(reservation.sid).fetch().reservation_status == "pending"


def test_out_of_range_instruction_parameter_is_400(router, fifo):
    workspace, worker = fifo
    reservation = offer(router, workspace, worker)
    with pytest.raises(TwilioRestException) as raised:
        workspace.workers(worker).reservations(reservation.sid).update(instruction="dequeue", dequeue_timeout=0)
    assert (raised.value.status, raised.value.code) == (400, 20001)
    assert "DequeueTimeout" in raised.value.msg


def test_going_offline_with_a_pending_reservation_needs_reject_pending_reservations(router, fifo):
    workspace, worker = fifo
    reservation = offer(router, workspace, worker)
    offline = activity_sid(workspace, "Offline")
    with pytest.raises(TwilioRestException) as raised:
        workspace.workers(worker).update(activity_sid=offline)
    assert (raised.value.status, raised.value.code) == (409, 20409)
    assert workspace.workers(worker).fetch().activity_name == "Available"
    updated = workspace.workers(worker).update(activity_sid=offline, reject_pending_reservations=True)
    assert updated.activity_name == "Offline"
    assert workspace.workers(worker).reservations(reservation.sid).fetch().reservation_status == "rejected"


def test_worker_with_an_active_reservation_cannot_be_deleted(router, fifo):
    workspace, worker = fifo
    offer(router, workspace, worker)
    with pytest.raises(TwilioRestException) as raised:
        workspace.workers(worker).delete()
    assert (raised.value.status, raised.value.code) == (409, 20409)
    assert workspace.workers(worker).fetch().friendly_name == "alice"
