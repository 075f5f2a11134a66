"""Events are kept 30 days, as TaskRouter keeps them; the sweeper deletes older ones in small batches."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from callcenter.routing import workspaces
from callcenter.routing.models import Event, OutboxMessage
from callcenter.routing.outbox import Response, Sweeper
from callcenter.routing.retention import EVENT_RETENTION, retention_from_days

DAY = 86_400


def served(center):
    """A task created, accepted and completed: its events, and alice's."""
    task = center.task()
    center.accept(center.pending_reservation(task).sid)
    center.complete(task)
    return task


@pytest.fixture
def staffed(center):
    center.workflow(default=center.queue())
    center.worker("alice")
    return center


def event_count(center, **where):
    with center.router.read() as session:
        query = select(func.count()).select_from(Event).where(Event.workspace_sid == center.ws)
        for column, value in where.items():
            query = query.where(getattr(Event, column) == value)
        return session.scalar(query)


def test_events_older_than_30_days_are_deleted_and_newer_ones_kept(staffed):
    center = staffed
    old = served(center)
    center.advance(30 * DAY - 60)
    recent = served(center)  # 59 seconds inside the retention when the purge runs
    before = event_count(center)
    center.advance(61)
    deleted = center.router.purge_expired_events()
    assert event_count(center, task_sid=old) == 0
    assert event_count(center, task_sid=recent) > 0
    assert deleted == before - event_count(center)
    assert center.router.purge_expired_events() == 0  # nothing left to delete
    center.assert_consistent()


def test_events_of_a_task_that_still_exists_are_kept_whatever_their_age(staffed):
    center = staffed
    center.router.event_retention = timedelta(hours=1)
    task = center.task()  # offered to alice and left pending; its TTL is a day
    center.advance(2 * 3600)
    center.router.purge_expired_events()
    assert event_count(center, task_sid=task, event_type="task.created") == 1
    center.assert_consistent()  # which wants the task.created of every task


def test_purging_goes_in_batches_oldest_first(staffed):
    center = staffed
    setup = event_count(center)  # the workspace's, its activities' and channels', alice's
    first, second = served(center), served(center)
    in_first, in_second = event_count(center, task_sid=first), event_count(center, task_sid=second)
    center.advance(31 * DAY)
    assert center.router.purge_expired_events(batch=setup + in_first, max_batches=1) == setup + in_first
    assert event_count(center, task_sid=first) == 0
    assert event_count(center, task_sid=second) == in_second
    assert center.router.purge_expired_events(batch=2, max_batches=100) >= in_second
    assert event_count(center, task_sid=second) == 0


def test_no_retention_keeps_events_for_ever(staffed):
    center = staffed
    task = served(center)
    center.router.event_retention = None
    center.advance(365 * DAY)
    assert center.router.purge_expired_events() == 0
    assert event_count(center, task_sid=task) > 0


def test_every_workspace_is_purged(staffed):
    center = staffed
    other = workspaces.create_workspace(center.router, account_sid="AC" + "3" * 32, friendly_name="Other").sid
    center.advance(31 * DAY)
    center.router.purge_expired_events()
    with center.router.read() as session:
        left = session.scalar(select(func.count()).select_from(Event).where(Event.workspace_sid == other))
    assert left == 0  # its workspace.created and activity/channel events


def test_the_sweeper_purges_on_its_first_pass_then_once_per_interval(staffed):
    center = staffed
    ticks = [1000.0]
    sweeper = Sweeper(center.router, purge_every=60.0, monotonic=lambda: ticks[0])
    try:
        first = served(center)
        center.advance(31 * DAY)
        sweeper.sweep()
        assert event_count(center, task_sid=first) == 0
        second = served(center)
        center.advance(31 * DAY)
        ticks[0] += 59.0
        sweeper.sweep()
        assert event_count(center, task_sid=second) > 0  # not a minute since the last purge
        ticks[0] += 1.0
        sweeper.sweep()
        assert event_count(center, task_sid=second) == 0
    finally:
        sweeper.stop()


def test_the_sweeper_purges_dead_callbacks_too(center):
    dead_callback(center)
    center.clock.advance(31 * DAY)
    sweeper = Sweeper(center.router, purge_every=60.0, monotonic=lambda: 0.0)
    try:
        sweeper.sweep()
    finally:
        sweeper.stop()
    assert outbox_statuses(center) == []


def outbox_statuses(center):
    with center.router.read() as session:
        return sorted(session.scalars(select(OutboxMessage.status).where(OutboxMessage.workspace_sid == center.ws)))


def dead_callback(center):
    """An assignment callback given up on: its URL answered 503 to every attempt."""
    center.workflow(default=center.queue(), assignment_callback_url="https://app.example/assignment")
    center.worker("alice")
    center.task()
    center.router.deliverer.transport = lambda url, params, headers, timeout: Response(503, "")
    for _ in range(6):  # an assignment callback has 4 attempts
        center.router.deliver_outbox()
        center.clock.advance(600)
    assert outbox_statuses(center) == ["dead"]


def test_callbacks_given_up_on_go_after_the_retention_since_their_last_attempt(center):
    dead_callback(center)
    center.clock.advance(29 * DAY)
    assert center.router.purge_dead_callbacks() == 0  # under 30 days since the last attempt
    center.clock.advance(DAY)
    assert center.router.purge_dead_callbacks() == 1
    assert outbox_statuses(center) == []


def test_callbacks_still_being_tried_are_never_purged(center):
    center.workflow(default=center.queue(), assignment_callback_url="https://app.example/assignment")
    center.worker("alice")
    center.task()  # its callback is pending, never attempted
    center.clock.advance(60 * DAY)
    assert center.router.purge_dead_callbacks() == 0
    assert outbox_statuses(center) == ["pending"]


def test_no_retention_keeps_dead_callbacks(center):
    dead_callback(center)
    center.router.event_retention = None
    center.clock.advance(365 * DAY)
    assert center.router.purge_dead_callbacks() == 0
    assert outbox_statuses(center) == ["dead"]


@pytest.mark.parametrize("value, expected", [("30", timedelta(days=30)), (" 7 ", timedelta(days=7)), ("0", None),
                                             (45, timedelta(days=45))])
def test_retention_days_setting(value, expected):
    assert retention_from_days(value) == expected


@pytest.mark.parametrize("value, message", [("thirty", "whole number of days"), ("1.5", "whole number of days"),
                                            ("-1", "cannot be negative")])
def test_a_bad_retention_setting_is_refused_with_what_is_wrong(value, message):
    with pytest.raises(ValueError, match=message):
        retention_from_days(value)


def test_the_default_retention_is_taskrouters_30_days(router):
    assert router.event_retention == EVENT_RETENTION == timedelta(days=30)


def test_the_sweeper_runs_the_apps_purgers_and_one_that_fails_holds_back_none_of_the_others(staffed, caplog):
    center = staffed
    task = served(center)
    center.advance(31 * DAY)
    ran = []

    def broken(router):
        ran.append("broken")
        raise RuntimeError("disk on fire")

    def working(router):
        ran.append("working")
        return 3

    center.router.purgers.extend([("broken rows", broken), ("working rows", working)])
    sweeper = Sweeper(center.router, purge_every=60.0, monotonic=lambda: 0.0)
    try:
        with caplog.at_level("INFO", logger="callcenter.routing"):
            sweeper.sweep()
    finally:
        sweeper.stop()
    assert ran == ["broken", "working"]
    assert event_count(center, task_sid=task) == 0  # the engine's own purge ran first
    messages = [record.getMessage() for record in caplog.records]
    assert "purging broken rows past their retention failed" in messages
    assert "deleted 3 working rows past their retention" in messages


@pytest.mark.parametrize("value, message", [
    ("a week", "CALL_RETENTION_DAYS must be a whole number of days (0 keeps call records for ever)"),
    ("-7", "CALL_RETENTION_DAYS cannot be negative (-7); 0 keeps call records for ever")])
def test_another_retention_setting_is_named_in_its_error(value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        retention_from_days(value, "CALL_RETENTION_DAYS", "call records")
