"""Statistics of the workspace, its TaskQueues, Workflows and Workers through the official twilio SDK.

Every test reads one known history (the `history` fixture), so each number below can be checked
by hand against it.
"""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from types import SimpleNamespace

import pytest

from .conftest import FlaskAppHttpClient
from .test_tasks_api import Center, list_error, rest_error

NO_WAIT = {"avg": 0, "min": 0, "max": 0, "total": 0}


class JsonBodyHttpClient(FlaskAppHttpClient):
    """Sends a JSON body as JSON, as the SDK's own HTTP client does (the bulk statistics POST needs it)."""

    def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                allow_redirects=False):
        if headers and headers.get("Content-Type") == "application/json" and isinstance(data, dict | list):
            data = json.dumps(data)
        return super().request(method, url, params, data, headers, auth, timeout, allow_redirects)


@pytest.fixture
def http(app):
    return JsonBodyHttpClient(app)


class QueueSids:
    """The body the SDK's bulk statistics `create` sends: anything with `to_dict()`."""

    def __init__(self, sids, key="QueueSids"):
        self.body = {key: sids}

    def to_dict(self):
        return self.body


@pytest.fixture
def history(taskrouter, clock, router):
    """A known 65 seconds of a contact center.

    t=0   workspace; queues Support (everyone) and Sales (skill sales); alice Available, bob (sales) Offline
    t=10  task 1 (priority 5) is offered to alice
    t=15  alice accepts it (a 5 s wait); task 2 arrives and waits: alice has no capacity left
    t=35  task 2 is canceled (a 20 s wait); task 3 arrives and waits
    t=65  now
    """
    center = Center(taskrouter, clock, router)
    start = clock.now().replace(tzinfo=UTC)
    sales = center.make_queue("Sales", target_workers="skill == 'sales'")
    alice = center.worker("alice")
    bob = center.worker("bob", {"skill": "sales"}, available=False)
    center.advance(10)
    first = center.task(priority=5)
    center.advance(5)
    center.accept(first)
    canceled = center.task()
    center.advance(20)
    center.ws.tasks(canceled).update(assignment_status="canceled", reason="caller hung up")
    waiting = center.task()
    center.advance(30)
    return SimpleNamespace(center=center, ws=center.ws, ws_sid=center.ws_sid, start=start, support=center.queue,
                           sales=sales, workflow=center.workflow, alice=alice, bob=bob, first=first, waiting=waiting)


def by_name(entries, field):
    """`activity_statistics` / `activity_durations` keyed by activity name."""
    return {entry["friendly_name"]: entry[field] for entry in entries}


# -- Workspace -------------------------------------------------------------------------------------

def test_workspace_statistics_combine_cumulative_and_real_time_numbers(history):
    stats = history.ws.statistics().fetch(minutes=60)
    assert (stats.account_sid, stats.workspace_sid) == ("AC" + "a" * 32, history.ws_sid)
    assert stats.url == f"http://taskrouter.local/v1/Workspaces/{history.ws_sid}/Statistics"
    cumulative, realtime = stats.cumulative, stats.realtime
    assert (cumulative["tasks_created"], cumulative["tasks_canceled"], cumulative["tasks_completed"]) == (3, 1, 0)
    assert (cumulative["reservations_created"], cumulative["reservations_accepted"]) == (1, 1)
    assert cumulative["start_time"] == "2026-01-05T08:01:05Z" and cumulative["end_time"] == "2026-01-05T09:01:05Z"
    assert (realtime["total_tasks"], realtime["total_workers"]) == (3, 2)
    assert "workspace_sid" not in cumulative and "workspace_sid" not in realtime  # said once, on the top level


def test_workspace_real_time_statistics_count_tasks_and_workers_now(history):
    stats = history.ws.real_time_statistics().fetch()
    assert stats.url.endswith(f"/Workspaces/{history.ws_sid}/RealTimeStatistics")
    assert stats.tasks_by_status == {"pending": 1, "reserved": 0, "assigned": 1, "wrapping": 0, "completed": 0,
                                     "canceled": 1}
    assert stats.tasks_by_priority == {"0": "2", "5": "1"}
    assert (stats.longest_task_waiting_sid, stats.longest_task_waiting_age) == (history.waiting, 30)
    assert by_name(stats.activity_statistics, "workers") == {"Available": 1, "Offline": 1, "Busy": 0, "Unavailable": 0}
    assert (stats.total_tasks, stats.total_workers) == (3, 2)


def test_workspace_real_time_statistics_narrowed_to_a_task_channel(history):
    history.ws.workers(history.alice).worker_channels("voice").update(available=False)
    voice = history.ws.real_time_statistics().fetch(task_channel="voice")
    assert (voice.total_tasks, voice.total_workers) == (0, 1)  # no voice tasks; only bob takes voice now
    assert history.ws.real_time_statistics().fetch(task_channel="default").total_tasks == 3


def test_workspace_cumulative_statistics_of_the_last_hour(history):
    stats = history.ws.cumulative_statistics().fetch(minutes=60, split_by_wait_time="10")
    assert stats.url.endswith(f"/Workspaces/{history.ws_sid}/CumulativeStatistics")
    assert (stats.tasks_created, stats.tasks_canceled, stats.tasks_deleted, stats.tasks_moved) == (3, 1, 0, 0)
    assert (stats.reservations_created, stats.reservations_accepted, stats.reservations_rejected) == (1, 1, 0)
    assert stats.avg_task_acceptance_time == 5
    assert stats.wait_duration_until_accepted == {"avg": 5, "min": 5, "max": 5, "total": 5}
    assert stats.wait_duration_until_canceled == {"avg": 20, "min": 20, "max": 20, "total": 20}
    assert stats.split_by_wait_time == {"10": {"above": {"tasks_canceled": 1, "reservations_accepted": 0},
                                               "below": {"tasks_canceled": 0, "reservations_accepted": 1}}}
    assert stats.end_time == history.start + timedelta(seconds=65)  # parsed by the SDK: Twilio's date format


def test_workspace_cumulative_statistics_between_two_dates(history):
    stats = history.ws.cumulative_statistics().fetch(start_date=history.start + timedelta(seconds=12),
                                                     end_date=history.start + timedelta(seconds=30))
    # Only t=15 is inside: the acceptance and task 2's arrival; task 1 arrived and was offered at t=10.
    assert (stats.tasks_created, stats.reservations_created, stats.reservations_accepted) == (1, 0, 1)
    assert (stats.start_time, stats.end_time) == (history.start + timedelta(seconds=12),
                                                  history.start + timedelta(seconds=30))


def test_workspace_cumulative_statistics_default_to_the_last_15_minutes(history):
    history.center.advance(15 * 60 - 20)  # t=945: the window [t=45, t=945] misses everything but nothing more
    stats = history.ws.cumulative_statistics().fetch()
    assert (stats.tasks_created, stats.reservations_accepted, stats.tasks_canceled) == (0, 0, 0)
    assert stats.wait_duration_until_accepted == NO_WAIT


@pytest.mark.parametrize("params", [{"minutes": 0}, {"minutes": 60 * 24 * 31}, {"split_by_wait_time": "soon"}])
def test_workspace_cumulative_statistics_refuse_a_bad_window(history, params):
    assert rest_error(lambda: history.ws.cumulative_statistics().fetch(**params))[:2] == (400, 20001)


def test_minutes_cannot_be_combined_with_dates(history):
    attempt = lambda: history.ws.statistics().fetch(minutes=5, start_date=history.start)  # noqa: E731
    assert rest_error(attempt)[:2] == (400, 20001)


def test_statistics_of_an_unknown_task_channel_are_not_found(history):
    assert rest_error(lambda: history.ws.real_time_statistics().fetch(task_channel="fax"))[:2] == (404, 20404)


def test_another_account_cannot_read_a_workspaces_statistics(history, other_client):
    other = other_client.taskrouter.v1.workspaces(history.ws_sid)
    for attempt in (lambda: other.statistics().fetch(), lambda: other.real_time_statistics().fetch(),
                    lambda: other.cumulative_statistics().fetch(), lambda: other.workers.statistics().fetch(),
                    lambda: other.task_queues(history.support).statistics().fetch(),
                    lambda: other.workflows(history.workflow).statistics().fetch(),
                    lambda: other.task_queues.bulk_real_time_statistics.create(QueueSids([history.support]))):
        assert rest_error(attempt)[:2] == (404, 20404)


# -- TaskQueues ------------------------------------------------------------------------------------

def test_task_queue_statistics_combine_its_cumulative_and_real_time_numbers(history):
    stats = history.ws.task_queues(history.support).statistics().fetch(minutes=60)
    assert (stats.task_queue_sid, stats.workspace_sid) == (history.support, history.ws_sid)
    assert stats.url.endswith(f"/TaskQueues/{history.support}/Statistics")
    assert (stats.cumulative["tasks_entered"], stats.cumulative["reservations_accepted"]) == (3, 1)
    assert (stats.realtime["total_eligible_workers"], stats.realtime["total_available_workers"]) == (2, 1)
    assert "task_queue_sid" not in stats.cumulative and "task_queue_sid" not in stats.realtime


def test_task_queue_cumulative_statistics(history):
    stats = history.ws.task_queues(history.support).cumulative_statistics().fetch(minutes=60)
    assert stats.task_queue_sid == history.support
    assert stats.url.endswith(f"/TaskQueues/{history.support}/CumulativeStatistics")
    assert (stats.tasks_entered, stats.tasks_canceled, stats.tasks_moved) == (3, 1, 0)
    assert (stats.reservations_created, stats.reservations_accepted) == (1, 1)
    assert stats.wait_duration_in_queue_until_accepted == {"avg": 5, "min": 5, "max": 5, "total": 5}
    assert stats.wait_duration_until_canceled == {"avg": 20, "min": 20, "max": 20, "total": 20}


def test_task_queue_real_time_statistics(history):
    stats = history.ws.task_queues(history.support).real_time_statistics().fetch()
    assert stats.url.endswith(f"/TaskQueues/{history.support}/RealTimeStatistics")
    assert (stats.total_tasks, stats.total_eligible_workers, stats.total_available_workers) == (3, 2, 1)
    assert (stats.longest_relative_task_sid_in_queue, stats.longest_relative_task_age_in_queue) == (history.waiting, 30)
    assert by_name(stats.activity_statistics, "workers")["Offline"] == 1
    sales = history.ws.task_queues(history.sales).real_time_statistics().fetch()
    assert (sales.total_tasks, sales.total_eligible_workers, sales.total_available_workers) == (0, 1, 0)
    assert sales.longest_task_waiting_sid is None


def test_statistics_of_an_unknown_task_queue_are_not_found(history):
    unknown = history.ws.task_queues("WQ" + "0" * 32)
    for attempt in (lambda: unknown.statistics().fetch(), lambda: unknown.real_time_statistics().fetch(),
                    lambda: unknown.cumulative_statistics().fetch()):
        assert rest_error(attempt)[:2] == (404, 20404)


def test_task_queues_statistics_list_every_queue(history):
    listed = {entry.task_queue_sid: entry for entry in history.ws.task_queues.statistics.list(minutes=60)}
    assert set(listed) == {history.support, history.sales}
    assert listed[history.support].cumulative["tasks_entered"] == 3
    assert listed[history.sales].realtime["total_eligible_workers"] == 1
    assert listed[history.sales].workspace_sid == history.ws_sid


def test_a_queue_deleted_while_the_statistics_list_is_read_is_left_out(history, monkeypatch):
    """The page's queues are read first, then each queue's numbers: one deleted in between made the list a 404."""
    from callcenter.api import statistics as api_statistics

    listed = api_statistics.paginate

    def then_deleted(*args, **kwargs):
        page = listed(*args, **kwargs)
        history.ws.task_queues(history.sales).delete()  # another client, at that moment
        return page

    monkeypatch.setattr(api_statistics, "paginate", then_deleted)
    entries = history.ws.task_queues.statistics.list(minutes=60)
    assert [entry.task_queue_sid for entry in entries] == [history.support]


def test_task_queues_statistics_of_an_unknown_task_channel_are_not_found(history):
    """Each queue's numbers checked the channel, and the deleted-queue skip took its 404 for a queue's: 200, []."""
    status, code, message = list_error(lambda: history.ws.task_queues.statistics.list(task_channel="fax"))
    assert (status, code) == (404, 20404) and "TaskChannel fax" in message


def test_task_queues_statistics_filter_by_friendly_name(history):
    listed = history.ws.task_queues.statistics.list(friendly_name="Sales")
    assert [entry.task_queue_sid for entry in listed] == [history.sales]


def test_task_queues_statistics_pages_carry_the_window(history):
    page = history.ws.task_queues.statistics.page(minutes=60, page_size=1)
    assert "Minutes=60" in page.next_page_url
    assert len(list(page)) == 1
    listed = [entry.task_queue_sid for entry in history.ws.task_queues.statistics.list(minutes=60, page_size=1)]
    assert sorted(listed) == sorted([history.support, history.sales])


def test_task_queues_statistics_list_refuses_a_bad_window(history):
    assert list_error(lambda: history.ws.task_queues.statistics.list(minutes=-1))[:2] == (400, 20001)


def test_bulk_real_time_statistics_of_several_queues(history):
    stats = history.ws.task_queues.bulk_real_time_statistics.create(QueueSids([history.support, history.sales]))
    assert stats.url.endswith(f"/Workspaces/{history.ws_sid}/TaskQueues/RealTimeStatistics")
    assert stats.task_queue_response_count == 2
    data = {entry["task_queue_sid"]: entry for entry in stats.task_queue_data}
    assert (data[history.support]["total_tasks"], data[history.support]["total_eligible_workers"]) == (3, 2)
    assert (data[history.sales]["total_tasks"], data[history.sales]["total_eligible_workers"]) == (0, 1)


def test_bulk_real_time_statistics_accept_the_queue_sids_key_of_twilios_example(history):
    stats = history.ws.task_queues.bulk_real_time_statistics.create(QueueSids([history.sales], key="queueSids"))
    assert [entry["task_queue_sid"] for entry in stats.task_queue_data] == [history.sales]


def test_bulk_real_time_statistics_zero_a_queue_that_is_not_here(history):
    stranger = "WQ" + "f" * 32
    stats = history.ws.task_queues.bulk_real_time_statistics.create(QueueSids([stranger]))
    assert stats.task_queue_data[0]["task_queue_sid"] == stranger
    assert (stats.task_queue_data[0]["total_tasks"], stats.task_queue_data[0]["total_eligible_workers"]) == (0, 0)


@pytest.mark.parametrize("sids", [[], [f"WQ{n:032x}" for n in range(51)], ["not-a-queue"], "WQ" + "0" * 32])
def test_bulk_real_time_statistics_take_1_to_50_queue_sids(history, sids):
    attempt = lambda: history.ws.task_queues.bulk_real_time_statistics.create(QueueSids(sids))  # noqa: E731
    assert rest_error(attempt)[:2] == (400, 20001)


def test_bulk_real_time_statistics_without_queue_sids_is_400(history):
    assert rest_error(lambda: history.ws.task_queues.bulk_real_time_statistics.create(
        QueueSids([history.support], key="Queues")))[:2] == (400, 20001)


# -- Workflows -------------------------------------------------------------------------------------

def test_workflow_statistics(history):
    workflow = history.ws.workflows(history.workflow)
    combined = workflow.statistics().fetch(minutes=60)
    assert (combined.workflow_sid, combined.url.endswith(f"/Workflows/{history.workflow}/Statistics")) == (
        history.workflow, True)
    assert (combined.cumulative["tasks_entered"], combined.realtime["total_tasks"]) == (3, 3)
    cumulative = workflow.cumulative_statistics().fetch(minutes=60)
    assert (cumulative.tasks_entered, cumulative.tasks_canceled, cumulative.reservations_accepted) == (3, 1, 1)
    assert cumulative.tasks_timed_out_in_workflow == 0
    realtime = workflow.real_time_statistics().fetch()
    assert realtime.tasks_by_status["pending"] == 1 and realtime.longest_task_waiting_sid == history.waiting
    assert rest_error(lambda: history.ws.workflows("WW" + "0" * 32).statistics().fetch())[:2] == (404, 20404)


# -- Workers ---------------------------------------------------------------------------------------

def test_workers_statistics_of_every_worker(history):
    stats = history.ws.workers.statistics().fetch(minutes=60)
    assert stats.url == f"http://taskrouter.local/v1/Workspaces/{history.ws_sid}/Workers/Statistics"
    assert (stats.cumulative["reservations_created"], stats.cumulative["reservations_accepted"]) == (1, 1)
    assert by_name(stats.cumulative["activity_durations"], "total") == {"Available": 65, "Offline": 65, "Busy": 0,
                                                                        "Unavailable": 0}
    assert by_name(stats.realtime["activity_statistics"], "workers") == {"Available": 1, "Offline": 1, "Busy": 0,
                                                                         "Unavailable": 0}
    assert stats.realtime["total_workers"] == 2


def test_workers_statistics_filtered_by_task_queue_name(history):
    stats = history.ws.workers.statistics().fetch(minutes=60, task_queue_name="Sales")  # bob only
    assert stats.realtime["total_workers"] == 1
    assert by_name(stats.realtime["activity_statistics"], "workers")["Offline"] == 1
    assert stats.cumulative["reservations_created"] == 0
    assert by_name(stats.cumulative["activity_durations"], "total") == {"Available": 0, "Offline": 65, "Busy": 0,
                                                                        "Unavailable": 0}


def test_workers_statistics_filtered_by_task_queue_sid(history):
    assert history.ws.workers.statistics().fetch(task_queue_sid=history.support).realtime["total_workers"] == 2
    assert history.ws.workers.statistics().fetch(task_queue_sid=history.sales).realtime["total_workers"] == 1


def test_workers_statistics_filtered_by_friendly_name(history):
    stats = history.ws.workers.statistics().fetch(minutes=60, friendly_name="alice")
    assert stats.realtime["total_workers"] == 1
    assert stats.cumulative["reservations_accepted"] == 1
    assert by_name(stats.cumulative["activity_durations"], "total")["Available"] == 65


def test_workers_statistics_of_a_queue_nobody_is_in_count_no_one(history):
    stats = history.ws.workers.statistics().fetch(task_queue_name="Nobody here")
    assert stats.realtime["total_workers"] == 0
    assert stats.cumulative["reservations_created"] == 0


def test_workers_real_time_statistics(history):
    stats = history.ws.workers.real_time_statistics().fetch()
    assert stats.url.endswith(f"/Workspaces/{history.ws_sid}/Workers/RealTimeStatistics")
    assert stats.total_workers == 2
    history.ws.workers(history.bob).worker_channels("sms").update(available=False)
    assert history.ws.workers.real_time_statistics().fetch(task_channel="sms").total_workers == 1


def test_workers_cumulative_statistics(history):
    stats = history.ws.workers.cumulative_statistics().fetch(minutes=60)
    assert stats.url.endswith(f"/Workspaces/{history.ws_sid}/Workers/CumulativeStatistics")
    assert (stats.reservations_created, stats.reservations_accepted, stats.reservations_rejected) == (1, 1, 0)
    assert by_name(stats.activity_durations, "avg") == {"Available": 65, "Offline": 65, "Busy": 0, "Unavailable": 0}
    assert stats.start_time == history.start + timedelta(seconds=65) - timedelta(minutes=60)


def test_worker_statistics_are_that_workers_own(history):
    alice = history.ws.workers(history.alice).statistics().fetch(minutes=60)
    assert (alice.worker_sid, alice.workspace_sid) == (history.alice, history.ws_sid)
    assert alice.url.endswith(f"/Workers/{history.alice}/Statistics")
    assert (alice.cumulative["reservations_created"], alice.cumulative["reservations_accepted"]) == (1, 1)
    assert by_name(alice.cumulative["activity_durations"], "total") == {"Available": 65, "Offline": 0, "Busy": 0,
                                                                        "Unavailable": 0}
    bob = history.ws.workers(history.bob).statistics().fetch(minutes=60)
    assert bob.cumulative["reservations_created"] == 0
    assert by_name(bob.cumulative["activity_durations"], "total")["Offline"] == 65


def test_statistics_of_an_unknown_worker_are_not_found(history):
    assert rest_error(lambda: history.ws.workers("WK" + "0" * 32).statistics().fetch())[:2] == (404, 20404)


def test_static_statistics_paths_are_not_taken_for_sids(history):
    """`/TaskQueues/Statistics` and `/Workers/Statistics` are resources, not a queue or worker named `Statistics`."""
    assert history.ws.task_queues(history.support).fetch().friendly_name == "Support"
    assert history.ws.workers(history.alice).fetch().friendly_name == "alice"
    assert history.ws.task_queues.statistics.list() and history.ws.workers.statistics().fetch().realtime


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("GET", "TaskQueues/RealTimeStatistics", "POST"),
    ("DELETE", "TaskQueues/RealTimeStatistics", "POST"),
    ("POST", "TaskQueues/Statistics", "GET, HEAD"),
    ("DELETE", "Workers/Statistics", "GET, HEAD"),
    ("POST", "Workers/CumulativeStatistics", "GET, HEAD"),
    ("POST", "Workers/RealTimeStatistics", "GET, HEAD"),
])
def test_a_wrong_method_on_a_collections_statistics_is_405_not_a_missing_sid(app, method, path, allowed):
    """`GET /TaskQueues/RealTimeStatistics` was taken for the queue "RealTimeStatistics": 404."""
    from tests.api.test_fuzz import AUTH

    workspace = app.test_client().post("/v1/Workspaces", data={"FriendlyName": "Methods"}, headers=AUTH).get_json()
    response = app.test_client().open(f"/v1/Workspaces/{workspace['sid']}/{path}", method=method, headers=AUTH)
    assert response.status_code == 405 and response.get_json()["code"] == 20004
    assert response.headers["Allow"] == allowed
