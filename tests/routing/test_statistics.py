"""Statistics (reference §8): real-time numbers from the current state, cumulative ones from the events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from callcenter.routing import InvalidParameter, NotFound, statistics, tasks, workers
from callcenter.routing.models import TaskChannel

from .conftest import Center

NO_WAIT = {"avg": 0, "min": 0, "max": 0, "total": 0}


def staffed(center, *names, **queue_options):
    """One queue of everyone, a workflow routing every task to it, and the named available workers."""
    queue = center.queue(**queue_options)
    center.workflow(default=queue)
    return queue, [center.worker(name) for name in names]


def escalating(center):
    """Tasks wait 30 s in queue `first`, then move to queue `second`; returns (first, second)."""
    first = center.queue("First", target_workers="skill == 'first'")
    second = center.queue("Second", target_workers="skill == 'second'")
    center.workflow(filters=[{"filter_friendly_name": "All", "expression": "1==1",
                              "targets": [{"queue": first, "timeout": 30}, {"queue": second}]}])
    return first, second


def by_name(entries, field):
    """`activity_statistics` / `activity_durations` keyed by activity name."""
    return {entry["friendly_name"]: entry[field] if field else entry for entry in entries}


def channel_sid(center, unique_name):
    with center.router.read() as session:
        return session.scalar(select(TaskChannel.sid).where(TaskChannel.workspace_sid == center.ws,
                                                            TaskChannel.unique_name == unique_name))


def cumulative(center, **options):
    return statistics.workspace_cumulative(center.router, center.ws, **options)


# -- workspace real-time ---------------------------------------------------------------------------

def test_workspace_real_time_counts_tasks_by_status_and_priority(center):
    queue = center.queue()
    center.workflow(default=queue)
    center.task(priority=0)
    first_urgent = center.task(priority=5)
    center.advance(1)
    center.task(priority=5)
    center.worker("alice")  # takes the older urgent task
    center.accept(center.pending_reservation(first_urgent).sid)
    center.worker("bob")  # takes the other urgent task
    stats = statistics.workspace_real_time(center.router, center.ws)
    assert stats["tasks_by_status"] == {"pending": 1, "reserved": 1, "assigned": 1, "wrapping": 0,
                                        "completed": 0, "canceled": 0}
    assert stats["tasks_by_priority"] == {"0": "1", "5": "2"}
    assert stats["total_tasks"] == 3


def test_longest_waiting_task_is_the_oldest_pending_or_reserved_one(center):
    staffed(center)
    oldest = center.task()
    center.advance(20)
    younger = center.task()
    center.advance(5)
    alice = center.worker("alice")
    reservation = center.pending_reservation(oldest)
    assert reservation.worker_sid == alice
    reserved = statistics.workspace_real_time(center.router, center.ws)
    assert (reserved["longest_task_waiting_sid"], reserved["longest_task_waiting_age"]) == (oldest, 25)
    center.accept(reservation.sid)
    assigned = statistics.workspace_real_time(center.router, center.ws)
    assert (assigned["longest_task_waiting_sid"], assigned["longest_task_waiting_age"]) == (younger, 5)


def test_longest_waiting_task_is_empty_without_waiting_tasks(center):
    stats = statistics.workspace_real_time(center.router, center.ws)
    assert (stats["longest_task_waiting_sid"], stats["longest_task_waiting_age"], stats["total_tasks"]) == (None, 0, 0)


def test_workspace_real_time_counts_workers_in_every_activity(center):
    center.worker("alice")
    center.worker("bob")
    center.worker("carol", available=False)
    stats = statistics.workspace_real_time(center.router, center.ws)
    assert by_name(stats["activity_statistics"], "workers") == {"Available": 2, "Offline": 1, "Unavailable": 0}
    assert stats["activity_statistics"][0].keys() == {"sid", "friendly_name", "workers"}
    assert stats["total_workers"] == 3


def test_workspace_real_time_task_channel_filter_accepts_unique_name_or_sid(center):
    staffed(center)
    center.task(task_channel="voice")
    center.task(task_channel="sms")
    center.task(task_channel="sms")
    by_unique_name = statistics.workspace_real_time(center.router, center.ws, task_channel="sms")
    by_sid = statistics.workspace_real_time(center.router, center.ws, task_channel=channel_sid(center, "voice"))
    assert (by_unique_name["total_tasks"], by_sid["total_tasks"]) == (2, 1)


def test_unknown_task_channel_is_not_found(center):
    with pytest.raises(NotFound):
        statistics.workspace_real_time(center.router, center.ws, task_channel="fax")


def test_workers_real_time_on_a_channel_counts_workers_whose_channel_is_on(center):
    center.worker("alice")
    bob = center.worker("bob")
    workers.update_worker_channel(center.router, center.ws, bob, "voice", available=False)
    voice = statistics.workers_real_time(center.router, center.ws, task_channel="voice")
    every = statistics.workers_real_time(center.router, center.ws)
    assert (voice["total_workers"], by_name(voice["activity_statistics"], "workers")["Available"]) == (1, 1)
    assert every["total_workers"] == 2


# -- task queue and workflow real-time -------------------------------------------------------------

def test_task_queue_real_time_counts_eligible_and_available_members(center):
    sales = center.queue("Sales", target_workers="skill == 'sales'")
    center.worker("alice", {"skill": "sales"})
    center.worker("bob", {"skill": "sales"}, available=False)
    center.worker("carol", {"skill": "support"})
    stats = statistics.task_queue_real_time(center.router, center.ws, sales)
    assert (stats["total_eligible_workers"], stats["total_available_workers"]) == (2, 1)
    assert by_name(stats["activity_statistics"], "workers") == {"Available": 1, "Offline": 1, "Unavailable": 0}


def test_task_queue_real_time_relative_age_counts_from_entering_the_queue(center):
    first, second = escalating(center)
    task = center.task()
    center.advance(30)  # moves to the second queue
    center.advance(10)
    stats = statistics.task_queue_real_time(center.router, center.ws, second)
    assert (stats["longest_task_waiting_sid"], stats["longest_task_waiting_age"]) == (task, 40)
    assert (stats["longest_relative_task_sid_in_queue"], stats["longest_relative_task_age_in_queue"]) == (task, 10)
    assert statistics.task_queue_real_time(center.router, center.ws, first)["total_tasks"] == 0


def test_task_queue_real_time_of_an_unknown_queue_is_not_found(center):
    with pytest.raises(NotFound):
        statistics.task_queue_real_time(center.router, center.ws, "WQ" + "0" * 32)


def test_bulk_real_time_gives_each_queue_its_numbers_and_zeroes_unknown_sids(center):
    sales = center.queue("Sales", target_workers="skill == 'sales'")
    support = center.queue("Support", target_workers="skill == 'support'")
    center.workflow(default=sales)
    center.task()
    center.worker("carol", {"skill": "support"})
    unknown = "WQ" + "f" * 32
    stats = statistics.task_queues_real_time_bulk(center.router, center.ws, [sales, support, unknown])
    data = {entry["task_queue_sid"]: entry for entry in stats["task_queue_data"]}
    assert stats["task_queue_response_count"] == 3
    assert (data[sales]["total_tasks"], data[sales]["tasks_by_status"]["pending"]) == (1, 1)
    assert (data[support]["total_tasks"], data[support]["total_available_workers"]) == (0, 1)
    assert data[unknown]["total_tasks"] == data[unknown]["total_eligible_workers"] == 0
    assert by_name(data[unknown]["activity_statistics"], "workers") == {"Available": 0, "Offline": 0,
                                                                        "Unavailable": 0}


def test_bulk_real_time_gives_zeroes_for_a_queue_of_another_workspace(center):
    other = Center(center.router, center.clock)
    elsewhere = other.queue()
    other.workflow(default=elsewhere)
    other.task()
    stats = statistics.task_queues_real_time_bulk(center.router, center.ws, [elsewhere])
    assert stats["task_queue_data"][0]["total_tasks"] == 0


@pytest.mark.parametrize("queue_sids", [[], ["WQ123"], ["WQ" + f"{n:032x}" for n in range(51)], "WQ" + "0" * 32],
                         ids=["none", "malformed", "more-than-50", "not-a-list"])
def test_bulk_real_time_rejects_bad_queue_sid_lists(center, queue_sids):
    with pytest.raises(InvalidParameter):
        statistics.task_queues_real_time_bulk(center.router, center.ws, queue_sids)


def test_workflow_real_time_counts_only_the_tasks_it_controls(center):
    queue = center.queue()
    mine = center.workflow(default=queue, name="Mine")
    other = center.workflow(default=queue, name="Other")
    center.task(workflow_sid=mine)
    center.task(workflow_sid=mine)
    center.task(workflow_sid=other)
    stats = statistics.workflow_real_time(center.router, center.ws, mine)
    assert (stats["workflow_sid"], stats["total_tasks"], stats["tasks_by_status"]["pending"]) == (mine, 2, 2)


# -- cumulative: the window ------------------------------------------------------------------------

def test_cumulative_window_defaults_to_the_last_15_minutes(center):
    now = center.clock.now()
    stats = cumulative(center)
    assert (stats["start_time"], stats["end_time"]) == (now - timedelta(minutes=15), now)


def test_events_before_the_window_are_not_counted(center):
    staffed(center, "alice")
    early = center.task()
    center.accept(center.pending_reservation(early).sid)
    center.complete(early)
    center.advance(20 * 60)
    center.task()
    recent = cumulative(center)
    assert (recent["tasks_created"], recent["reservations_created"], recent["reservations_accepted"],
            recent["tasks_completed"]) == (1, 1, 0, 0)
    longer = cumulative(center, minutes=30)
    assert (longer["tasks_created"], longer["reservations_accepted"], longer["tasks_completed"]) == (2, 1, 1)


def test_start_and_end_dates_bound_the_window_inclusively(center):
    staffed(center)
    t0 = center.clock.now()
    center.task()
    center.advance(600)
    center.task()
    assert cumulative(center, start_date=t0 - timedelta(minutes=1), end_date=t0 + timedelta(minutes=5))[
        "tasks_created"] == 1
    assert cumulative(center, start_date=t0, end_date=t0 + timedelta(minutes=10))["tasks_created"] == 2
    assert cumulative(center, start_date=t0 + timedelta(minutes=10))["tasks_created"] == 1


def test_cumulative_echoes_the_window_it_was_given(center):
    now = center.clock.now()
    hour = cumulative(center, minutes=60)
    assert (hour["start_time"], hour["end_time"]) == (now - timedelta(minutes=60), now)
    since = cumulative(center, start_date=now - timedelta(days=2))
    assert (since["start_time"], since["end_time"]) == (now - timedelta(days=2), now)


@pytest.mark.parametrize("window", [
    {"minutes": 10, "start_date": -60},
    {"minutes": 0},
    {"minutes": 30 * 24 * 60 + 1},
    {"start_date": -60, "end_date": -120},
    {"start_date": 60},
    {"start_date": -31 * 24 * 3600},
], ids=["minutes-with-dates", "zero-minutes", "beyond-30-days", "start-after-end", "start-in-future",
        "start-beyond-30-days"])
def test_invalid_window_is_rejected(center, window):
    now = center.clock.now()
    options = {key: now + timedelta(seconds=value) if key.endswith("date") else value for key, value in window.items()}
    with pytest.raises(InvalidParameter):
        cumulative(center, **options)


def test_a_start_in_the_future_is_named_as_such_without_an_end_date(center):
    """It said "StartDate must not be after EndDate" to a caller who sent no EndDate."""
    with pytest.raises(InvalidParameter, match=r"^StartDate must not be in the future$"):
        cumulative(center, start_date=center.clock.now() + timedelta(minutes=1))


# -- cumulative: workspace -------------------------------------------------------------------------

def test_workspace_cumulative_counts_tasks_and_reservations(center):
    staffed(center, "alice")
    accepted = center.task()
    center.accept(center.pending_reservation(accepted).sid)
    waiting = center.task()  # alice is busy: it stays pending
    center.cancel(waiting)
    center.complete(accepted)
    rejected = center.task()
    center.reject(center.pending_reservation(rejected).sid)
    tasks.delete_task(center.router, center.ws, rejected)
    stats = cumulative(center)
    assert {key: stats[key] for key in (
        "tasks_created", "tasks_canceled", "tasks_completed", "tasks_deleted", "tasks_moved",
        "tasks_timed_out_in_workflow", "reservations_created", "reservations_accepted", "reservations_rejected",
        "reservations_timed_out", "reservations_canceled", "reservations_rescinded",
    )} == {
        "tasks_created": 3, "tasks_canceled": 1, "tasks_completed": 1, "tasks_deleted": 1, "tasks_moved": 0,
        "tasks_timed_out_in_workflow": 0, "reservations_created": 2, "reservations_accepted": 1,
        "reservations_rejected": 1, "reservations_timed_out": 0, "reservations_canceled": 0,
        "reservations_rescinded": 0,
    }


def test_wait_until_accepted_counts_from_task_creation(center):
    staffed(center, "alice", "bob")
    first = center.task()
    center.advance(10)
    second = center.task()
    center.accept(center.pending_reservation(first).sid)  # waited 10 s
    center.advance(30)
    center.accept(center.pending_reservation(second).sid)  # waited 30 s
    stats = cumulative(center)
    assert stats["wait_duration_until_accepted"] == {"avg": 20, "min": 10, "max": 30, "total": 40}
    assert stats["avg_task_acceptance_time"] == 20
    assert stats["wait_duration_until_canceled"] == NO_WAIT


def test_wait_until_canceled_counts_from_task_creation(center):
    staffed(center)
    first = center.task()
    center.advance(5)
    second = center.task()
    center.advance(10)
    center.cancel(first)  # waited 15 s
    center.advance(20)
    center.cancel(second)  # waited 30 s
    stats = cumulative(center)
    assert stats["wait_duration_until_canceled"] == {"avg": 22, "min": 15, "max": 30, "total": 45}
    assert stats["wait_duration_until_accepted"] == NO_WAIT


def test_split_by_wait_time_counts_above_and_at_most_each_threshold(center):
    staffed(center, "alice", "bob")
    first = center.task()
    center.advance(5)
    center.accept(center.pending_reservation(first).sid)  # waited 5 s: not above 5
    second = center.task()
    center.advance(20)
    center.accept(center.pending_reservation(second).sid)  # waited 20 s
    short, long = center.task(), center.task()  # both workers are busy
    center.advance(10)
    center.cancel(short)  # waited 10 s
    center.advance(30)
    center.cancel(long)  # waited 40 s
    split = cumulative(center, split_by_wait_time="5,30")["split_by_wait_time"]
    assert split == {
        "5": {"above": {"tasks_canceled": 2, "reservations_accepted": 1},
              "below": {"tasks_canceled": 0, "reservations_accepted": 1}},
        "30": {"above": {"tasks_canceled": 1, "reservations_accepted": 0},
               "below": {"tasks_canceled": 1, "reservations_accepted": 2}},
    }


def test_split_by_wait_time_is_absent_unless_asked(center):
    assert cumulative(center)["split_by_wait_time"] is None


@pytest.mark.parametrize("thresholds", ["five", "5,-1", ","])
def test_split_by_wait_time_must_be_whole_seconds(center, thresholds):
    with pytest.raises(InvalidParameter):
        cumulative(center, split_by_wait_time=thresholds)


def test_cumulative_task_channel_filter_counts_only_that_channel(center):
    staffed(center, "alice")
    voice = center.task(task_channel="voice")
    sms = center.task(task_channel="sms")  # alice has room on sms too
    center.advance(10)
    center.accept(center.pending_reservation(voice).sid)
    center.advance(10)
    center.cancel(sms)
    on_voice = cumulative(center, task_channel="voice")
    on_sms = cumulative(center, task_channel=channel_sid(center, "sms"))
    assert (on_voice["tasks_created"], on_voice["reservations_accepted"], on_voice["tasks_canceled"]) == (1, 1, 0)
    assert (on_sms["tasks_created"], on_sms["reservations_canceled"], on_sms["tasks_canceled"]) == (1, 1, 1)
    assert on_sms["wait_duration_until_canceled"]["total"] == 20


# -- cumulative: task queues and workflows ---------------------------------------------------------

def test_task_queue_cumulative_counts_only_its_own_tasks(center):
    sales = center.queue("Sales")
    support = center.queue("Support")
    center.workflow(filters=[{"expression": "type == 'sales'", "targets": [{"queue": sales}]}], default=support)
    sold = center.task({"type": "sales"})
    center.task({"type": "support"})
    center.advance(10)
    center.cancel(sold)
    in_sales = statistics.task_queue_cumulative(center.router, center.ws, sales)
    in_support = statistics.task_queue_cumulative(center.router, center.ws, support)
    assert (in_sales["tasks_entered"], in_sales["tasks_canceled"], in_sales["wait_duration_until_canceled"]["total"]) \
        == (1, 1, 10)
    assert (in_support["tasks_entered"], in_support["tasks_canceled"]) == (1, 0)


def test_task_queue_wait_in_queue_counts_from_entering_the_queue(center):
    _first, second = escalating(center)
    task = center.task()
    center.advance(30)  # moves to the second queue, where nobody is yet
    center.worker("alice", {"skill": "second"})
    center.advance(10)
    center.accept(center.pending_reservation(task).sid)
    stats = statistics.task_queue_cumulative(center.router, center.ws, second)
    assert stats["wait_duration_until_accepted"] == {"avg": 40, "min": 40, "max": 40, "total": 40}
    assert stats["wait_duration_in_queue_until_accepted"] == {"avg": 10, "min": 10, "max": 10, "total": 10}


def test_task_queue_tasks_moved_counts_tasks_that_left_the_queue(center):
    first, second = escalating(center)
    center.task()
    center.advance(30)
    left = statistics.task_queue_cumulative(center.router, center.ws, first)
    arrived = statistics.task_queue_cumulative(center.router, center.ws, second)
    assert (left["tasks_entered"], left["tasks_moved"]) == (1, 1)
    assert (arrived["tasks_entered"], arrived["tasks_moved"]) == (1, 0)
    assert cumulative(center)["tasks_moved"] == 1


def test_task_queue_cumulative_of_an_unknown_queue_is_not_found(center):
    with pytest.raises(NotFound):
        statistics.task_queue_cumulative(center.router, center.ws, "WQ" + "0" * 32)


def test_workflow_cumulative_counts_tasks_that_timed_out_of_it(center):
    queue = center.queue()
    workflow = center.workflow(filters=[{"expression": "1==1", "targets": [{"queue": queue, "timeout": 30}]}])
    center.task()
    center.advance(30)
    stats = statistics.workflow_cumulative(center.router, center.ws, workflow)
    assert (stats["tasks_entered"], stats["tasks_timed_out_in_workflow"], stats["tasks_canceled"]) == (1, 1, 1)
    assert stats["wait_duration_until_canceled"] == {"avg": 30, "min": 30, "max": 30, "total": 30}
    assert cumulative(center)["tasks_timed_out_in_workflow"] == 1


def test_workflow_cumulative_counts_only_its_own_tasks(center):
    queue = center.queue()
    mine = center.workflow(default=queue, name="Mine")
    other = center.workflow(default=queue, name="Other")
    center.task(workflow_sid=mine)
    center.task(workflow_sid=other)
    center.task(workflow_sid=other)
    stats = statistics.workflow_cumulative(center.router, center.ws, mine)
    assert (stats["workflow_sid"], stats["tasks_entered"]) == (mine, 1)


# -- cumulative: workers ---------------------------------------------------------------------------

def reservation_outcomes(center):
    """Alice accepts a task offered to both (bob's offer is rescinded); on the next, alice rejects and bob
    times out; back from Offline, bob is offered it again and it is canceled."""
    _queue, (alice, bob) = staffed(center, "alice", "bob", max_reserved_workers=2)
    first = center.task()
    center.accept(center.reservations(task_sid=first, worker_sid=alice)[0].sid)
    center.complete(first)
    second = center.task()
    center.reject(center.reservations(task_sid=second, worker_sid=alice)[0].sid)
    center.advance(120)  # bob's offer times out and he goes Offline
    center.set_activity(bob, "Available")
    center.cancel(second)
    return alice, bob


RESERVATION_FIELDS = ("reservations_created", "reservations_accepted", "reservations_rejected",
                      "reservations_timed_out", "reservations_canceled", "reservations_rescinded")


def test_workers_cumulative_counts_reservations_by_outcome(center):
    reservation_outcomes(center)
    stats = statistics.workers_cumulative(center.router, center.ws)
    assert [stats[field] for field in RESERVATION_FIELDS] == [5, 1, 1, 1, 1, 1]


def test_worker_cumulative_counts_only_that_workers_reservations(center):
    alice, bob = reservation_outcomes(center)
    of_alice = statistics.worker_cumulative(center.router, center.ws, alice)
    of_bob = statistics.worker_cumulative(center.router, center.ws, bob)
    assert (of_alice["worker_sid"], of_bob["worker_sid"]) == (alice, bob)
    assert [of_alice["cumulative"][field] for field in RESERVATION_FIELDS] == [2, 1, 1, 0, 0, 0]
    assert [of_bob["cumulative"][field] for field in RESERVATION_FIELDS] == [3, 0, 0, 1, 1, 1]


def test_worker_cumulative_of_an_unknown_worker_is_not_found(center):
    with pytest.raises(NotFound):
        statistics.worker_cumulative(center.router, center.ws, "WK" + "0" * 32)


def test_activity_durations_count_each_stint_including_the_current_one(center):
    alice = center.worker("alice")
    center.advance(60)
    center.set_activity(alice, "Unavailable")
    center.advance(30)
    center.set_activity(alice, "Available")
    center.advance(10)  # 10 s so far in the current stint
    durations = by_name(statistics.workers_cumulative(center.router, center.ws)["activity_durations"], None)
    assert {key: durations["Available"][key] for key in ("avg", "min", "max", "total")} == \
        {"avg": 35, "min": 10, "max": 60, "total": 70}
    assert durations["Unavailable"]["total"] == durations["Unavailable"]["max"] == 30
    assert durations["Offline"]["total"] == 0


def test_activity_durations_are_clipped_to_the_window_start(center):
    alice = center.worker("alice")
    center.advance(20 * 60)
    center.set_activity(alice, "Unavailable")
    center.advance(60)
    totals = by_name(statistics.workers_cumulative(center.router, center.ws)["activity_durations"], "total")
    assert (totals["Available"], totals["Unavailable"]) == (15 * 60 - 60, 60)


def test_activity_durations_of_a_past_window_count_the_stints_in_progress_at_its_end(center):
    t0 = center.clock.now()
    alice = center.worker("alice")
    center.worker("bob", available=False)
    center.advance(100)
    center.set_activity(alice, "Unavailable")
    center.advance(50)
    center.set_activity(alice, "Available")
    center.advance(50)
    stats = statistics.workers_cumulative(center.router, center.ws, start_date=t0 + timedelta(seconds=10),
                                          end_date=t0 + timedelta(seconds=50))
    durations = by_name(stats["activity_durations"], None)
    assert (durations["Available"]["total"], durations["Available"]["max"]) == (40, 40)
    assert (durations["Offline"]["total"], durations["Unavailable"]["total"]) == (40, 0)


def test_activity_durations_of_a_window_ending_later_count_up_to_now(center):
    t0 = center.clock.now()
    center.worker("alice")
    center.advance(45)
    stats = statistics.workers_cumulative(center.router, center.ws, start_date=t0,
                                          end_date=t0 + timedelta(hours=1))
    assert by_name(stats["activity_durations"], "total")["Available"] == 45


def test_a_deleted_workers_time_still_counts_in_the_windows_it_was_in(center):
    """Deleting a worker ended their last stint with no activity update: that time vanished, even from a
    closed window in the past."""
    t0 = center.clock.now()
    center.worker("keep")
    gone = center.worker("gone")
    center.advance(30)
    center.set_activity(gone, "Unavailable")
    center.advance(70)
    past = {"start_date": t0, "end_date": t0 + timedelta(seconds=60)}
    before = by_name(statistics.workers_cumulative(center.router, center.ws, **past)["activity_durations"], "total")
    workers.delete_worker(center.router, center.ws, gone)
    center.advance(20)
    after = by_name(statistics.workers_cumulative(center.router, center.ws, **past)["activity_durations"], "total")
    assert before["Unavailable"] == after["Unavailable"] == 30
    assert before["Available"] == after["Available"] == 60 + 30
    now = by_name(statistics.workers_cumulative(center.router, center.ws, minutes=60)["activity_durations"], "total")
    assert (now["Unavailable"], now["Available"]) == (70, 120 + 30)  # up to the deletion; keep's up to now


def test_worker_cumulative_activity_durations_are_that_workers_own(center):
    alice = center.worker("alice")
    center.worker("bob", available=False)
    center.advance(30)
    center.set_activity(alice, "Unavailable")
    center.advance(15)
    durations = statistics.worker_cumulative(center.router, center.ws, alice)["cumulative"]["activity_durations"]
    assert by_name(durations, "total") == {"Available": 30, "Offline": 0, "Unavailable": 15}
