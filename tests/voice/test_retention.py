"""Call records are kept as long as CALL_RETENTION_DAYS says (for ever by default); agent legs, working
state, go once their reservation is gone and the shorter retention has passed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from callcenter.database import get_router
from callcenter.routing.tasks import TASK_RETENTION_SECONDS
from callcenter.voice.models import AgentLeg, Call
from callcenter.voice.retention import purge_call_records
from tests.support import contact_center_app

from .conftest import Scenario, twiml
from .test_call_flow import answer, ring_alice

DAY = 86_400


def finished_call(scenario) -> tuple[str, str]:
    """Alice answers a sales call, talks, hangs up, and wraps up: the task is completed. (CallSid, reservation)."""
    caller, reservation = ring_alice(scenario)
    answer(scenario, reservation.sid)
    task = scenario.task(caller)
    twiml(scenario.post(f"/voice/agent/after?task={task.sid}", CallSid=scenario.agent_leg(reservation.sid).call_sid))
    scenario.advance(30)  # the end of wrap-up
    assert scenario.task(caller).assignment_status == "completed"
    return caller, reservation.sid


def abandoned_call(scenario) -> str:
    """A support caller who hangs up while waiting (nobody is rung): the task is canceled."""
    caller = scenario.dial(digits="2")
    assert scenario.post("/voice/status", CallSid=caller, CallStatus="completed").status_code == 204
    return caller


def purge(scenario) -> int:
    """What the sweeper runs for the voice app: its registered purger, with the app's CALL_RETENTION_DAYS."""
    return dict(scenario.router.purgers)["call records"](scenario.router)


def legs_of(scenario, reservation_sid: str) -> int:
    with scenario.router.read() as session:
        return session.scalar(select(func.count()).select_from(AgentLeg).where(AgentLeg.reservation_sid == reservation_sid))


def stored_calls(scenario) -> list[str]:
    with scenario.router.read() as session:
        return sorted(session.scalars(select(Call.call_sid)))


@pytest.fixture
def kept_a_week(database_url, clock, rest):
    app = contact_center_app(database_url, clock, CALL_RETENTION_DAYS="7")
    yield Scenario(app, clock, rest)
    get_router(app).dispose()


def test_calls_past_the_call_retention_go_with_their_agent_legs_and_newer_ones_stay(kept_a_week):
    scenario = kept_a_week
    _old, old_reservation = finished_call(scenario)
    scenario.advance(7 * DAY - 3600)
    recent = abandoned_call(scenario)
    scenario.advance(3600 + TASK_RETENTION_SECONDS)  # both tasks deleted; the old call started 7 days ago

    assert purge(scenario) == 1
    assert stored_calls(scenario) == [recent]
    assert legs_of(scenario, old_reservation) == 0
    assert purge(scenario) == 0


def test_a_call_whose_task_still_exists_is_kept_whatever_its_age(scenario):
    caller = scenario.dial(digits="2")  # waits: nobody in support is available
    scenario.advance(61)
    assert purge_call_records(scenario.router, timedelta(minutes=1)) == 0
    assert stored_calls(scenario) == [caller]

    scenario.post("/voice/status", CallSid=caller, CallStatus="completed")  # the caller hangs up
    scenario.advance(TASK_RETENTION_SECONDS)  # the canceled task is deleted
    assert purge_call_records(scenario.router, timedelta(minutes=1)) == 1
    assert stored_calls(scenario) == []


def test_by_default_calls_are_kept_for_ever_and_agent_legs_go_after_the_event_retention(scenario):
    caller, reservation_sid = finished_call(scenario)
    scenario.advance(TASK_RETENTION_SECONDS)  # the task and its reservation are deleted
    scenario.advance(30 * DAY - TASK_RETENTION_SECONDS - 60)
    assert purge(scenario) == 0
    assert legs_of(scenario, reservation_sid) == 1  # under 30 days old

    scenario.advance(61)
    assert purge(scenario) == 1
    assert legs_of(scenario, reservation_sid) == 0
    scenario.advance(400 * DAY)
    assert purge(scenario) == 0
    assert stored_calls(scenario) == [caller]


def test_an_agent_leg_is_kept_while_its_reservation_exists(scenario):
    scenario.router.event_retention = timedelta(seconds=10)
    caller, reservation = ring_alice(scenario)
    scenario.advance(11)  # the leg is older than the retention; the phone still rings
    assert purge(scenario) == 0
    assert legs_of(scenario, reservation.sid) == 1

    scenario.post("/voice/queue-result", CallSid=caller, QueueResult="hangup", QueueSid="QU" + "9" * 32)
    scenario.deliver()
    scenario.advance(TASK_RETENTION_SECONDS)  # the canceled task is deleted, and its reservation
    assert purge(scenario) == 1
    assert legs_of(scenario, reservation.sid) == 0
    assert stored_calls(scenario) == [caller]  # the call record itself is kept (CALL_RETENTION_DAYS=0)


def test_with_both_retentions_off_nothing_is_deleted(scenario):
    scenario.router.event_retention = None
    caller, reservation_sid = finished_call(scenario)
    scenario.advance(400 * DAY)
    assert purge(scenario) == 0
    assert stored_calls(scenario) == [caller]
    assert legs_of(scenario, reservation_sid) == 1


def test_calls_go_oldest_first_in_batches(kept_a_week):
    scenario = kept_a_week
    first = abandoned_call(scenario)
    scenario.advance(60)
    second = abandoned_call(scenario)
    scenario.advance(8 * DAY)
    assert purge_call_records(scenario.router, timedelta(days=7), batch=1, max_batches=1) == 1
    assert stored_calls(scenario) == [second]
    assert purge_call_records(scenario.router, timedelta(days=7), batch=1, max_batches=5) == 1
    assert stored_calls(scenario) == []
    assert first != second
