"""Explanations: each reason a worker is not offered a task, named by the explanation, and the property
that "eligible now" is exactly who the engine's next match reserves."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from callcenter.routing import NotFound, workers
from callcenter.routing.explain import (
    ELIGIBLE_NOW,
    REASONS,
    explain_task,
    explain_task_in,
    explain_worker,
    explain_worker_in,
)
from callcenter.routing.matching import reserve_for_task
from callcenter.routing.models import Reservation, Task, Worker, WorkerChannel
from tests.routing.conftest import Center, on_a_call_with_a_chat_waiting


def route(expression, *targets, name="Route"):
    return {"filter_friendly_name": name, "expression": expression, "targets": list(targets)}


def verdict_of(explanation, worker_sid):
    [verdict] = [v for v in explanation.workers if v.worker_sid == worker_sid]
    return verdict


def reason_of(center, task_sid, worker_sid):
    return verdict_of(explain_task(center.router, center.ws, task_sid), worker_sid).reason


@pytest.fixture
def single_tasking(router, clock):
    center = Center(router, clock, multi_task_enabled=False)
    yield center
    center.assert_consistent()


# -- each reason -------------------------------------------------------------------------------------

def test_worker_outside_target_workers_is_not_in_queue_with_the_failed_clause(center):
    center.workflow(default=center.queue("Billing", target_workers="skills HAS 'billing' AND level > 1"))
    alice = center.worker("alice", {"skills": ["sales"], "level": 3})
    task = center.task()

    verdict = verdict_of(explain_task(center.router, center.ws, task), alice)

    assert verdict.reason == "not_in_queue"
    assert [(c.text, c.left, c.result) for c in verdict.clauses] == [
        ("skills HAS 'billing'", ["sales"], False), ("level > 1", 3, True)]
    assert "skills HAS 'billing'" in verdict.detail and "level > 1" not in verdict.detail.split("failed:")[1]


def test_queue_with_empty_target_workers_selects_nobody(center):
    queue = center.queue("Nobody", target_workers="")
    center.workflow(default=queue)
    alice = center.worker("alice")
    task = center.task()

    verdict = verdict_of(explain_task(center.router, center.ws, task), alice)

    assert verdict.reason == "not_in_queue"
    assert "selects nobody" in verdict.detail


def test_worker_in_an_unavailable_activity_is_named(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice", available=False)
    task = center.task()

    verdict = verdict_of(explain_task(center.router, center.ws, task), alice)

    assert verdict.reason == "activity_unavailable"
    assert "'Offline'" in verdict.detail


def test_worker_whose_channel_is_off_is_channel_unavailable(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    workers.update_worker_channel(center.router, center.ws, alice, "voice", available=False)
    task = center.task(task_channel="voice")

    assert reason_of(center, task, alice) == "channel_unavailable"


def test_worker_with_every_slot_taken_is_at_capacity(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    first = center.task(task_channel="voice")
    second = center.task(task_channel="voice")

    verdict = verdict_of(explain_task(center.router, center.ws, second), alice)

    assert center.pending_reservation(first).worker_sid == alice
    assert verdict.reason == "channel_at_capacity"
    assert "1 of 1" in verdict.detail


def test_worker_failing_the_target_expression_gets_its_clauses(center):
    queue = center.queue()
    center.workflow(filters=[route("type == 'sales'", {"queue": queue, "expression": "worker.level >= task.level"})])
    alice = center.worker("alice", {"level": 1})
    task = center.task({"type": "sales", "level": 2})

    verdict = verdict_of(explain_task(center.router, center.ws, task), alice)

    assert verdict.reason == "failed_target_expression"
    assert [(c.text, c.left, c.right, c.result) for c in verdict.clauses] == [
        ("worker.level >= task.level", 1, 2, False)]


def test_known_worker_target_names_the_worker_it_wants(center):
    queue = center.queue()
    center.workflow(filters=[route("1 == 1", {"queue": queue, "known_worker_friendly_name": "task.agent"})])
    alice = center.worker("alice")
    task = center.task({"agent": "bob"})

    verdict = verdict_of(explain_task(center.router, center.ws, task), alice)

    assert verdict.reason == "failed_target_expression"
    assert "'bob'" in verdict.detail


def test_worker_who_rejected_the_task_is_named_until_it_moves_on(center):
    queue = center.queue()
    center.workflow(filters=[route("1 == 1", {"queue": queue, "timeout": 30}, {"queue": queue})])
    alice = center.worker("alice")
    task = center.task()
    center.reject(center.pending_reservation(task).sid)

    assert reason_of(center, task, alice) == "rejected"

    center.advance(30)  # the next target: a new routing step, alice is offered it again
    assert reason_of(center, task, alice) == "offered"


def test_a_rejection_in_a_step_without_timeout_says_the_worker_is_not_offered_the_task_again(center):
    """It said "eligible again at the next target" where there is none: the only agent waited for ever."""
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    task = center.task()
    center.reject(center.pending_reservation(task).sid)
    verdict = verdict_of(explain_task(center.router, center.ws, task), alice)
    assert verdict.reason == "rejected"
    assert "which has no timeout: it is not offered to them again unless the task's attributes change" in verdict.detail
    center.advance(3600)
    assert reason_of(center, task, alice) == "rejected"  # what the explanation said


def test_a_worker_on_another_task_is_said_to_be_on_it_not_rung_for_it(single_tasking):
    center = single_tasking
    alice, chat = on_a_call_with_a_chat_waiting(center)
    verdict = verdict_of(explain_task(center.router, center.ws, chat), alice)
    assert verdict.reason == "reservation_pending_elsewhere"
    assert verdict.detail == "multitasking is off and they hold another task (1 accepted)"


def test_a_full_channel_says_what_fills_it(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    center.task()
    second = center.task()
    verdict = verdict_of(explain_task(center.router, center.ws, second), alice)
    assert verdict.reason == "channel_at_capacity" and verdict.detail.endswith("(1 of 1 taken: 1 pending offer)")


def test_a_known_worker_that_does_not_exist_is_said_not_to(center):
    queue = center.queue()
    center.workflow(filters=[route("1 == 1", {"queue": queue, "known_worker_sid": "task.agent"})])
    alice = center.worker("alice")
    task = center.task({"agent": "WK" + "0" * 32})
    assert verdict_of(explain_task(center.router, center.ws, task), alice).detail.endswith(
        "and no worker of this workspace has that sid")
    other = center.task({"agent": center.worker("bob", available=False)})
    assert "no worker" not in verdict_of(explain_task(center.router, center.ws, other), alice).detail


def test_a_task_says_how_many_its_queue_serves_before_it(center):
    center.workflow(default=center.queue())
    tasks = {priority: center.task(priority=priority) for priority in (5, 1, 10)}
    explained = explain_task(center.router, center.ws, tasks[1])
    assert explained.ahead_in_queue == 2 and "behind 2 task(s) it serves first (FIFO)" in explained.summary
    assert explain_task(center.router, center.ws, tasks[10]).ahead_in_queue == 0


def test_the_step_after_a_filters_last_target_is_the_one_the_engine_takes(center):
    """The explanation said "the next filter that matches, or canceled"; here the next filter that matches has
    its own step over already (age 30), so the task is canceled at 60: the explanation says so, and when."""
    nobody = center.queue("Nobody", target_workers="skills HAS 'none'")
    center.workflow(filters=[route("1 == 1", {"queue": nobody, "timeout": 60}, name="First"),
                             route("1 == 1", {"queue": nobody, "timeout": 30}, name="Second")], default=nobody)
    task = center.task()
    center.advance(55)
    explained = explain_task(center.router, center.ws, task)
    assert explained.target.then.startswith("is canceled (workflow.timeout)")
    assert explained.workflow_timeout_seconds_left == 5
    center.advance(5)
    assert center.get_task(task).assignment_status == "canceled"


def test_the_step_after_a_filters_last_target_can_be_a_later_filter(center):
    nobody, later = center.queue("Nobody", target_workers="skills HAS 'none'"), center.queue("Later")
    center.workflow(filters=[route("1 == 1", {"queue": nobody, "timeout": 60}, name="First"),
                             route("1 == 1", {"queue": later, "timeout": 30}, {"queue": nobody}, name="Second")])
    task = center.task()
    explained = explain_task(center.router, center.ws, task)
    assert explained.target.then == "moves to target 2 (TaskQueue 'Nobody') of filter 'Second'"
    assert explained.workflow_timeout_seconds_left is None  # its last step has no timeout
    center.advance(60)
    assert center.get_task(task).task_queue_sid == nobody


def test_single_tasking_worker_holding_another_reservation_is_pending_elsewhere(single_tasking):
    center = single_tasking
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    center.task(task_channel="voice")
    chat = center.task(task_channel="chat")

    verdict = verdict_of(explain_task(center.router, center.ws, chat), alice)

    assert verdict.reason == "reservation_pending_elsewhere"
    assert "multitasking is off" in verdict.detail


def test_longer_idle_worker_is_offered_first_and_the_other_is_lower_in_order(center):
    center.workflow(default=center.queue())
    bob = center.worker("bob")
    center.clock.advance(5)
    alice = center.worker("alice")
    task = center.task()

    explanation = explain_task(center.router, center.ws, task)

    assert verdict_of(explanation, bob).reason == "offered"
    alice_verdict = verdict_of(explanation, alice)
    assert alice_verdict.reason == "lower_in_order"
    assert alice_verdict.rank == 1  # first in line among those not yet offered
    assert "longest idle first" in alice_verdict.detail and bob in alice_verdict.detail


def test_order_by_puts_a_higher_worker_first(center):
    queue = center.queue()
    center.workflow(filters=[route("1 == 1", {"queue": queue, "order_by": "worker.level DESC"})])
    low = center.worker("low", {"level": 1}, available=False)
    center.clock.advance(5)
    high = center.worker("high", {"level": 9}, available=False)
    mid = center.worker("mid", {"level": 5}, available=False)
    task = center.task()

    # Everyone becomes available at once, before any match: the order decides.
    explanation, reserved, _ = explain_then_match(center, task, lambda tx: [make_available(tx, center, sid)
                                                                             for sid in (low, high, mid)])

    assert reserved == {high}
    assert [(v.worker_name, v.reason, v.rank) for v in explanation.workers] == [
        ("high", ELIGIBLE_NOW, 1), ("mid", "lower_in_order", 2), ("low", "lower_in_order", 3)]
    assert "order_by worker.level DESC" in verdict_of(explanation, mid).detail


def make_available(tx, center, worker_sid):
    """A worker made available without matching (the state just before a match runs)."""
    worker = tx.session.get(Worker, worker_sid)
    worker.activity_sid, worker.available = center.available, True


class Rollback(Exception):
    pass


def explain_then_match(center, task_sid, change):
    """Apply `change(tx)` without matching, explain the task, run the engine's match for it, roll back.

    Returns the explanation, the workers the match reserved, and each worker's own explanation's
    verdict on the task."""
    try:
        with center.router.transaction(center.ws) as tx:
            change(tx)
            task = tx.session.get(Task, task_sid)
            explanation = explain_task_in(tx, task)
            worker_side = {}
            for worker in tx.session.scalars(select(Worker).where(Worker.workspace_sid == center.ws)):
                [worker_side[worker.sid]] = [v for v in explain_worker_in(tx, worker).tasks if v.task_sid == task_sid]
            before = set(tx.session.scalars(select(Reservation.sid).where(Reservation.task_sid == task_sid)))
            reserve_for_task(tx, task)
            tx.session.flush()
            reserved = {r.worker_sid for r in tx.session.scalars(select(Reservation).where(
                Reservation.task_sid == task_sid)) if r.sid not in before}
            raise Rollback
    except Rollback:
        return explanation, reserved, worker_side


def test_eligible_worker_is_the_one_the_engine_then_reserves(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice", available=False)
    task = center.task()
    with center.router.transaction(center.ws) as tx:
        make_available(tx, center, alice)
        verdict = verdict_of(explain_task_in(tx, tx.session.get(Task, task)), alice)
        tx.wake_worker(tx.session.get(Worker, alice))

    assert (verdict.reason, verdict.eligible) == (ELIGIBLE_NOW, True)
    assert center.pending_reservation(task).worker_sid == alice


def test_pending_offer_holder_is_offered(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    task = center.task()

    verdict = verdict_of(explain_task(center.router, center.ws, task), alice)

    assert verdict.reason == "offered"
    assert verdict.reservation_sid == center.pending_reservation(task).sid


def test_first_reason_wins_when_several_apply(center):
    center.workflow(default=center.queue("Sales", target_workers="skills HAS 'sales'"))
    alice = center.worker("alice", {"skills": []}, available=False)  # outside the queue AND offline
    task = center.task()

    assert reason_of(center, task, alice) == REASONS[0] == "not_in_queue"


# -- the workflow side -------------------------------------------------------------------------------

def test_earlier_filters_show_why_they_did_not_match(center):
    queue = center.queue()
    center.workflow(filters=[route("vip == true AND level > 3", {"queue": queue}, name="VIP"),
                             route("type == 'sales'", {"queue": queue}, name="Sales"),
                             route("1 == 1", {"queue": queue}, name="Rest")])
    task = center.task({"type": "sales", "level": 5})

    explanation = explain_task(center.router, center.ws, task)

    vip, sales, rest = explanation.filters
    assert (vip.matched, vip.outcome) == (False, "no_match")
    assert [(c.text, c.left, c.result) for c in vip.clauses] == [("vip == true", None, False), ("level > 3", 5, True)]
    assert (sales.matched, sales.outcome) == (True, "current")
    assert (rest.matched, rest.outcome) == (None, "not_evaluated")
    assert explanation.matched_filter == "Sales"


def test_target_shows_time_left_and_where_the_task_goes_next(center):
    first = center.queue("First", target_workers="skills HAS 'none'")
    second = center.queue("Second")
    center.workflow(filters=[route("1 == 1", {"queue": first, "timeout": 60}, {"queue": second})])
    task = center.task()
    center.advance(20)

    target = explain_task(center.router, center.ws, task).target

    assert (target.filter_name, target.target_index, target.queue_name) == ("Route", 0, "First")
    assert target.seconds_left == 40
    assert "target 2" in target.then and "Second" in target.then


def test_filter_that_timed_out_is_marked_timed_out(center):
    nobody = center.queue("Nobody", target_workers="skills HAS 'none'")
    center.workflow(filters=[route("1 == 1", {"queue": nobody, "timeout": 10}, name="First"),
                             route("1 == 1", {"queue": nobody}, name="Second")])
    task = center.task()
    center.advance(10)

    first, second = explain_task(center.router, center.ws, task).filters

    assert (first.matched, first.outcome) == (True, "timed_out")
    assert second.outcome == "current"


def test_a_filter_skipped_by_skip_if_stays_skipped_after_its_timeout_would_have_passed(center):
    """The label was worked out from the task's age: a filter skipped at once read "timed out" 30 s later."""
    nobody = center.queue("Nobody", target_workers="skills HAS 'none'")
    center.workflow(filters=[route("1 == 1", {"queue": nobody, "timeout": 30, "skip_if": "workers.available == 0"},
                                   name="First"),
                             route("1 == 1", {"queue": nobody, "skip_if": "1 == 2"}, name="Second")])
    task = center.task()
    center.advance(40)
    explained = explain_task(center.router, center.ws, task)
    assert [f.outcome for f in explained.filters] == ["skipped", "current"]
    assert explained.target.skip_if == "1 == 2"


def test_default_filter_and_task_in_no_queue(center):
    queue = center.queue()
    center.workflow(filters=[route("type == 'x'", {"queue": queue})])
    task = center.task({"type": "y"})

    explanation = explain_task(center.router, center.ws, task)

    assert explanation.matched_filter is None and explanation.workers == []
    assert "matched no workflow filter" in explanation.summary


def test_task_that_is_not_waiting_says_so(center):
    center.workflow(default=center.queue())
    center.worker("alice")
    task = center.task()
    center.accept(center.pending_reservation(task).sid)

    explanation = explain_task(center.router, center.ws, task)

    assert explanation.assignment_status == "assigned"
    assert explanation.workers == [] and "not waiting" in explanation.summary


def test_unknown_task_or_worker_is_not_found(center):
    with pytest.raises(NotFound):
        explain_task(center.router, center.ws, "WT" + "0" * 32)
    with pytest.raises(NotFound):
        explain_worker(center.router, center.ws, "WK" + "0" * 32)
    with pytest.raises(NotFound):
        explain_task(center.router, "WS" + "0" * 32, "WT" + "0" * 32)


# -- the worker side ---------------------------------------------------------------------------------

def test_worker_explanation_lists_each_waiting_task_with_its_reason(center):
    sales = center.queue("Sales", target_workers="skills HAS 'sales'")
    support = center.queue("Support", target_workers="skills HAS 'support'")
    center.workflow(filters=[route("type == 'sales'", {"queue": sales}, name="Sales"),
                             route("type == 'support'", {"queue": support}, name="Support")])
    bob = center.worker("bob", {"skills": ["sales"]})
    sales_task = center.task({"type": "sales"})
    support_task = center.task({"type": "support"})
    second_sales = center.task({"type": "sales"})

    explanation = explain_worker(center.router, center.ws, bob)

    assert [(v.task_sid, v.reason) for v in explanation.tasks] == [
        (sales_task, "offered"), (second_sales, "channel_at_capacity"), (support_task, "not_in_queue")]
    assert explanation.reservations[0]["task_sid"] == sales_task


def test_a_workers_explanation_lists_their_own_queues_tasks_first_in_serving_order(center):
    """It took the workspace's first 200 tasks by priority: an agent in a quiet queue saw 200 tasks of a
    queue they are not in, and not the one in theirs. LIFO queues were listed oldest first."""
    busy = center.queue("Busy", target_workers="team == 'busy'")
    quiet = center.queue("Quiet", target_workers="team == 'quiet'", task_order="LIFO")
    center.workflow(filters=[route("q == 'busy'", {"queue": busy}, name="Busy"),
                             route("q == 'quiet'", {"queue": quiet, "expression": "worker.level > 5"}, name="Quiet")])
    bobby = center.worker("bobby", {"team": "quiet", "level": 1})
    for _ in range(5):
        center.task({"q": "busy"}, priority=5)
    older = center.task({"q": "quiet"})
    center.clock.advance(1)
    newer = center.task({"q": "quiet"})
    explanation = explain_worker(center.router, center.ws, bobby, limit=4)
    assert [v.task_sid for v in explanation.tasks[:2]] == [newer, older]  # LIFO: newest first
    assert [v.reason for v in explanation.tasks] == ["failed_target_expression"] * 2 + ["not_in_queue"] * 2
    assert explanation.summary == ("2 waiting task(s) in this worker's queues ('Quiet'): 2 failed target "
                                   "expression; 5 more in queues they are not in")


def test_unavailable_worker_summary_names_the_activity(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice", available=False)
    task = center.task()

    explanation = explain_worker(center.router, center.ws, alice)

    assert "'Offline' is not available" in explanation.summary
    assert [(v.task_sid, v.reason) for v in explanation.tasks] == [(task, "activity_unavailable")]


# -- the property: "eligible now" iff the engine's next match reserves the worker --------------------

WORKER = st.fixed_dictionaries({
    "skills": st.sampled_from([["sales"], ["support"], ["sales", "support"], []]),
    "level": st.integers(0, 3),
    "available": st.sampled_from([False, False, True]),  # mostly woken later, behind matching's back
    "voice_capacity": st.sampled_from([0, 1, 1, 2]),
    "voice_available": st.sampled_from([True, True, False]),
})
SCENARIO = st.fixed_dictionaries({
    "multitasking": st.booleans(),
    "max_reserved": st.integers(1, 3),
    "target_expression": st.sampled_from([None, "worker.level >= task.level", "worker.skills HAS task.type"]),
    "order_by": st.sampled_from([None, "worker.level DESC", "worker.level ASC"]),
    "staff": st.lists(WORKER, min_size=1, max_size=5),
    "earlier_tasks": st.integers(0, 3),
    "reject_first_offer": st.booleans(),
    "task": st.fixed_dictionaries({"type": st.sampled_from(["sales", "support"]), "level": st.integers(0, 3)}),
    "wake": st.lists(st.integers(0, 4), min_size=1, max_size=5),
    "capacity_changes": st.lists(st.tuples(st.integers(0, 4), st.integers(0, 2)), max_size=3),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(scenario=SCENARIO)
def test_eligible_now_is_exactly_who_the_engine_reserves(router, clock, scenario):
    # Each example gets its own workspace in the test's database.
    center = Center(router, clock, multi_task_enabled=scenario["multitasking"])
    queue = center.queue("Sales", target_workers="skills HAS 'sales' OR level >= 2",
                         max_reserved_workers=scenario["max_reserved"])
    target = {"queue": queue}
    if scenario["target_expression"]:
        target["expression"] = scenario["target_expression"]
    if scenario["order_by"]:
        target["order_by"] = scenario["order_by"]
    center.workflow(filters=[route("1 == 1", target)])
    staff = []
    for number, person in enumerate(scenario["staff"]):
        clock.advance(1)
        sid = center.worker(f"w{number}", {"skills": person["skills"], "level": person["level"]},
                            available=person["available"])
        workers.update_worker_channel(router, center.ws, sid, "voice", capacity=person["voice_capacity"],
                                      available=person["voice_available"])
        staff.append(sid)
    for _ in range(scenario["earlier_tasks"]):
        center.task(scenario["task"], task_channel="voice")
    task_sid = center.task(scenario["task"], task_channel="voice")
    if scenario["reject_first_offer"]:
        offers = center.reservations(task_sid=task_sid, status="pending")
        if offers:
            center.reject(offers[0].sid)
    center.assert_consistent()

    # At rest the engine has matched everything it could: nobody is eligible now.
    at_rest = explain_task(router, center.ws, task_sid)
    assert [v for v in at_rest.workers if v.eligible] == []
    assert {v.worker_sid for v in at_rest.workers} == set(staff)

    # Change the state behind matching's back, then ask both: explanation first, engine second.
    def change(tx):
        for index in scenario["wake"]:
            if index < len(staff):
                make_available(tx, center, staff[index])
        for index, capacity in scenario["capacity_changes"]:
            if index < len(staff):
                channel = tx.session.scalar(select(WorkerChannel).where(
                    WorkerChannel.worker_sid == staff[index],
                    WorkerChannel.task_channel_sid == tx.config.channels_by_name["voice"].sid))
                channel.capacity = max(capacity, channel.reserved_tasks)

    explanation, reserved, worker_side = explain_then_match(center, task_sid, change)

    eligible = {v.worker_sid for v in explanation.workers if v.reason == ELIGIBLE_NOW}
    event(f"{len(eligible)} eligible now")
    assert eligible == reserved
    # A worker's own explanation says the same about this task as the task's explanation (with the same place
    # for one eligible now; below the offers that can go out, it does not rank: see explain._rank).
    def said(verdict):
        return verdict.reason, verdict.rank if verdict.reason == ELIGIBLE_NOW else None

    assert {v.worker_sid: said(v) for v in explanation.workers} == {sid: said(v) for sid, v in worker_side.items()}
    assert all(v.reason in (*REASONS, "offered", ELIGIBLE_NOW) for v in explanation.workers)


def test_api_shape_is_plain_data(center):
    center.workflow(default=center.queue())
    center.worker("alice")
    task = center.task()

    data = explain_task(center.router, center.ws, task).as_dict()

    json.dumps(data, default=str)
    assert data["workers"][0]["reason"] == "offered"
