"""`flask check` (alias of `flask routing check`) on a deliberately corrupted database: every violation, by workspace."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, update

from app import create_app
from callcenter.routing.models import Event, Timer, WorkerChannel
from tests.routing.conftest import Center


@pytest.fixture
def app(database_url, clock):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "RUN_SWEEPER": False, "AUTO_MIGRATE": False})
    app.extensions["router"].clock = clock
    yield app
    app.extensions["router"].dispose()


@pytest.fixture
def centers(app, clock):
    router = app.extensions["router"]
    first, second = Center(router, clock), Center(router, clock)
    for center in (first, second):
        center.workflow(default=center.queue())
    return first, second


def invoke(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def test_check_reports_zero_violations_on_a_consistent_database(app, centers):
    first, _ = centers
    worker = first.worker("alice")
    first.task()
    first.task()  # waits: alice is busy with the first one
    assert first.reservations(worker_sid=worker)
    result = invoke(app, "check")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "0 violation(s) in 2 workspace(s)"


def test_check_lists_every_violation_with_its_workspace_and_sids(app, centers):
    first, second = centers
    alice = first.worker("alice", available=False)
    waiting = second.task()
    bob = second.worker("bob", available=False)
    other = second.task()
    voice = first.channel(alice, "voice")
    router = app.extensions["router"]
    with router.writer.begin() as conn:
        conn.execute(update(WorkerChannel).where(WorkerChannel.sid == voice.sid).values(reserved_tasks=1))
        conn.execute(delete(Timer).where(Timer.kind == "task_ttl", Timer.subject_sid == waiting))
        conn.execute(delete(Event).where(Event.resource_sid == other, Event.event_type == "task.created"))

    result = invoke(app, "check")

    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1] == "3 violation(s) in 2 workspace(s)", result.output
    violations = lines[:-1]
    assert len(violations) == 3
    assert (f"{first.ws}: worker {alice} channel {voice.task_channel_sid}: counter says 1 reserved, "
            "reservations say 0") in violations
    assert f"{second.ws}: task {waiting} is waiting without a TTL timer" in violations
    assert f"{second.ws}: task {other} has no task.created event" in violations
    assert bob not in result.output

    # `routing check` is the same command; --workspace narrows it.
    assert invoke(app, "routing", "check").output == result.output
    only_second = invoke(app, "check", "--workspace", second.ws)
    assert only_second.exit_code == 1
    assert only_second.output.strip().splitlines()[-1] == "2 violation(s) in 1 workspace(s)"
    assert first.ws not in only_second.output


def test_check_of_an_unknown_workspace_says_so(app, centers):
    result = invoke(app, "check", "--workspace", "WS" + "0" * 32)
    assert result.exit_code == 2
    assert f"Workspace WS{'0' * 32} not found" in result.output
