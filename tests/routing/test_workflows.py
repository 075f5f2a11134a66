"""Workflows: configuration checked on save, and tasks moved through filters and targets."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from callcenter.routing import InvalidParameter, tasks, workers, workflows
from callcenter.routing.explain import explain_task
from callcenter.routing.models import Event, Workflow
from callcenter.routing.sids import new_sid


def route(expression, *targets, name="Route"):
    return {"filter_friendly_name": name, "expression": expression, "targets": list(targets)}


def configuration(*filters, default=None):
    routing = {"filters": list(filters)}
    if default is not None:
        routing["default_filter"] = default
    return json.dumps({"task_routing": routing})


def rejected_configuration(center, text):
    """Save `text` as a workflow and return the error it was refused with."""
    with pytest.raises(InvalidParameter) as caught:
        workflows.create_workflow(center.router, center.ws, friendly_name="Bad", configuration=text)
    assert caught.value.code == 20001
    return str(caught.value)


def update_attributes(center, task_sid, attributes):
    tasks.update_task(center.router, center.ws, task_sid, attributes=json.dumps(attributes))


def queues_entered(center, task_sid):
    with center.router.read() as session:
        return list(session.scalars(
            select(Event.task_queue_sid).where(Event.task_sid == task_sid, Event.event_type == "task-queue.entered")
            .order_by(Event.id)))


# -- configuration checked on save -----------------------------------------------------------------

def test_configuration_that_is_not_json_is_rejected(center):
    message = rejected_configuration(center, "{task_routing: ")
    assert "not valid JSON" in message


def test_configuration_without_task_routing_is_rejected(center):
    message = rejected_configuration(center, json.dumps({"filters": []}))
    assert "task_routing" in message


def test_unknown_queue_is_rejected_naming_the_filter_and_target_it_came_from(center):
    sales = center.queue("Sales")
    missing = new_sid("WQ")
    message = rejected_configuration(center, configuration(
        route("type == 'sales'", {"queue": sales, "timeout": 10}, {"queue": missing}, name="Sales")))
    assert missing in message
    assert "filter 'Sales' target 2" in message


def test_queue_of_another_workspace_is_rejected_as_unknown(center):
    from callcenter.routing import queues, workspaces

    other = workspaces.create_workspace(center.router, account_sid="AC" + "1" * 32, friendly_name="Other").sid
    foreign = queues.create_task_queue(center.router, other, friendly_name="Foreign").sid
    message = rejected_configuration(center, configuration(default={"queue": foreign}))
    assert foreign in message
    assert "default_filter" in message


def test_bad_filter_expression_is_rejected_naming_filter_and_column(center):
    sales = center.queue("Sales")
    message = rejected_configuration(center, configuration(route("type == ", {"queue": sales}, name="Sales")))
    assert "filter 'Sales' expression" in message
    assert "column 9" in message


def test_target_expression_key_without_task_or_worker_prefix_is_rejected(center):
    sales = center.queue("Sales")
    message = rejected_configuration(center, configuration(
        route("1==1", {"queue": sales, "expression": "agent_id == task.agent_id"}, name="Sales")))
    assert "filter 'Sales' target 1 expression" in message
    assert "agent_id" in message


def test_bad_order_by_is_rejected(center):
    sales = center.queue("Sales")
    message = rejected_configuration(center, configuration(
        route("1==1", {"queue": sales, "order_by": "worker.level SIDEWAYS"}, name="Sales")))
    assert "filter 'Sales' target 1 order_by" in message


def test_bad_skip_if_is_rejected(center):
    sales = center.queue("Sales")
    message = rejected_configuration(center, configuration(
        route("1==1", {"queue": sales, "skip_if": "workers.available >"}, name="Sales")))
    assert "filter 'Sales' target 1 skip_if" in message


def test_default_filter_with_a_timeout_is_rejected(center):
    sales = center.queue("Sales")
    message = rejected_configuration(center, configuration(default={"queue": sales, "timeout": 30}))
    assert "default_filter" in message
    assert "timeout" in message


def test_non_integer_target_priority_is_rejected(center):
    sales = center.queue("Sales")
    message = rejected_configuration(center, configuration(
        route("1==1", {"queue": sales, "priority": "high"}, name="Sales")))
    assert "filter 'Sales' target 1 priority" in message


def test_rejected_create_leaves_no_workflow_and_no_event(center):
    with center.router.read() as session:
        events_before = session.scalar(select(func.count()).select_from(Event))
    rejected_configuration(center, configuration(default={"queue": new_sid("WQ")}))
    with center.router.read() as session:
        assert session.scalar(select(func.count()).select_from(Workflow)) == 0
        assert session.scalar(select(func.count()).select_from(Event)) == events_before


def test_rejected_update_keeps_the_saved_configuration(center):
    sales = center.queue("Sales")
    workflow = center.workflow(default=sales)
    with pytest.raises(InvalidParameter):
        workflows.update_workflow(center.router, center.ws, workflow,
                                  configuration=configuration(default={"queue": new_sid("WQ")}))
    with center.router.read() as session:
        saved = session.get(Workflow, workflow).configuration
    assert json.loads(saved)["task_routing"]["default_filter"] == {"queue": sales}


# -- filters ---------------------------------------------------------------------------------------

def test_first_matching_filter_wins(center):
    sales, everyone = center.queue("Sales"), center.queue("Everyone")
    center.workflow(filters=[route("type == 'sales'", {"queue": sales}),
                             route("1==1", {"queue": everyone})])
    task = center.task({"type": "sales"})
    assert center.get_task(task).task_queue_sid == sales


def test_filters_are_tried_top_down_until_one_matches(center):
    sales, support = center.queue("Sales"), center.queue("Support")
    center.workflow(filters=[route("type == 'sales'", {"queue": sales}),
                             route("type == 'support'", {"queue": support})])
    task = center.task({"type": "support"})
    assert center.get_task(task).task_queue_sid == support


def test_task_matching_no_filter_goes_to_default_filter(center):
    sales, general = center.queue("Sales"), center.queue("General")
    center.workflow(filters=[route("type == 'sales'", {"queue": sales})], default=general)
    task = center.task({"type": "billing"})
    assert center.get_task(task).task_queue_sid == general


# -- targets ---------------------------------------------------------------------------------------

def test_later_target_without_queue_inherits_the_previous_queue(center):
    sales = center.queue("Sales")
    center.workflow(filters=[route("1==1", {"queue": sales, "timeout": 10}, {"priority": 5})])
    task = center.task()
    center.advance(10)
    moved = center.get_task(task)
    assert (moved.task_queue_sid, moved.target_index, moved.priority) == (sales, 1, 5)


def test_target_priority_sets_the_task_priority(center):
    sales = center.queue("Sales")
    center.workflow(filters=[route("1==1", {"queue": sales, "priority": 10})])
    task = center.task(priority=1)
    assert center.get_task(task).priority == 10


def test_target_without_priority_keeps_the_task_priority(center):
    sales = center.queue("Sales")
    center.workflow(filters=[route("1==1", {"queue": sales})])
    task = center.task(priority=3)
    assert center.get_task(task).priority == 3


def test_target_timeouts_add_up_against_the_task_age(center):
    q1, q2, q3 = center.queue("Q1"), center.queue("Q2"), center.queue("Q3")
    center.workflow(filters=[route("1==1", {"queue": q1, "timeout": 10}, {"queue": q2, "timeout": 10},
                                   {"queue": q3, "timeout": 10})])
    task = center.task()
    positions = {}
    elapsed = 0
    for age in (9, 10, 19, 20, 29):
        center.advance(age - elapsed)
        elapsed = age
        positions[age] = center.get_task(task).task_queue_sid
    assert positions == {9: q1, 10: q2, 19: q2, 20: q3, 29: q3}


def test_moving_to_the_next_target_emits_timeout_and_moved_events(center):
    q1, q2 = center.queue("Q1"), center.queue("Q2")
    center.workflow(filters=[route("1==1", {"queue": q1, "timeout": 10}, {"queue": q2})])
    task = center.task()
    center.advance(10)
    events = center.event_types(task_sid=task)
    assert events[-4:] == ["task-queue.timeout", "workflow.target-matched", "task-queue.moved", "task-queue.entered"]


def test_documented_example_reservation_timeout_does_not_restart_the_step_clock(center):
    # Reference §3.3: Q1/Q2/Q3 each with timeout 10 and a reservation timeout of 5 s. The task is in
    # Q2 when a reservation made at t=3 times out at t=8; Q2's step still ends at age 20 (the sum of
    # the Q1 and Q2 timeouts), 12 s later, not 10 s after the task entered Q2.
    q1, q2, q3 = center.queue("Q1", "team == 'one'"), center.queue("Q2", "team == 'two'"), center.queue("Q3")
    center.workflow(filters=[route("1==1", {"queue": q1, "timeout": 10, "skip_if": "1==1"},
                                   {"queue": q2, "timeout": 10}, {"queue": q3, "timeout": 10})],
                    task_reservation_timeout=5)
    bob = center.worker("bob", {"team": "two"}, available=False)
    task = center.task()
    assert center.get_task(task).task_queue_sid == q2
    center.advance(3)
    center.set_activity(bob, "Available")
    assert center.pending_reservation(task).worker_sid == bob
    center.advance(5)
    assert center.reservations(task_sid=task)[0].reservation_status == "timeout"
    center.advance(11)  # age 19
    assert center.get_task(task).task_queue_sid == q2
    center.advance(1)  # age 20
    assert center.get_task(task).task_queue_sid == q3


def test_timing_out_of_the_last_target_cancels_the_task(center):
    sales = center.queue("Sales")
    center.workflow(filters=[route("1==1", {"queue": sales, "timeout": 30})])
    task = center.task()
    center.advance(30)
    canceled = center.get_task(task)
    assert (canceled.assignment_status, canceled.reason) == ("canceled", "Workflow Timeout")
    assert center.event_types(task_sid=task)[-2:] == ["workflow.timeout", "task.canceled"]


def test_timing_out_of_the_last_target_withdraws_the_pending_reservation(center):
    sales = center.queue("Sales")
    center.workflow(filters=[route("1==1", {"queue": sales, "timeout": 30})])
    alice = center.worker("alice")
    task = center.task()
    reservation = center.pending_reservation(task).sid
    center.advance(30)
    assert center.reservations(task_sid=task)[0].reservation_status == "canceled"
    assert center.reservations(task_sid=task)[0].sid == reservation
    assert center.channel(alice, "default").reserved_tasks == 0


def test_target_already_expired_when_the_task_reaches_it_is_stepped_over(center):
    q1, q2, q3 = center.queue("Q1"), center.queue("Q2"), center.queue("Q3")
    center.workflow(filters=[route("1==1", {"queue": q1, "timeout": 10}, {"queue": q2, "timeout": 10},
                                   {"queue": q3, "timeout": 10})])
    task = center.task()
    center.advance(25)  # the Q1 timer fires late, when Q2's step (ending at age 20) is already over
    assert center.get_task(task).task_queue_sid == q3
    assert queues_entered(center, task) == [q1, q3]


def test_task_updated_into_a_filter_whose_early_targets_expired_enters_the_first_live_one(center):
    q1, q2, general = center.queue("Q1"), center.queue("Q2"), center.queue("General")
    center.workflow(filters=[route("vip == true", {"queue": q1, "timeout": 10}, {"queue": q2, "timeout": 10})],
                    default=general)
    task = center.task({"vip": False})
    center.advance(15)
    update_attributes(center, task, {"vip": True})
    assert center.get_task(task).task_queue_sid == q2


# -- skip_if ---------------------------------------------------------------------------------------

def test_skip_if_skips_the_target_when_nobody_is_available(center):
    q1, q2 = center.queue("Q1"), center.queue("Q2")
    center.workflow(filters=[route("1==1", {"queue": q1, "skip_if": "workers.available == 0"}, {"queue": q2})])
    center.worker("alice", available=False)
    task = center.task()
    assert center.get_task(task).task_queue_sid == q2


def test_skip_if_is_not_evaluated_when_a_reservation_can_be_made(center):
    q1, q2 = center.queue("Q1"), center.queue("Q2")
    center.workflow(filters=[route("1==1", {"queue": q1, "skip_if": "1==1"}, {"queue": q2})])
    alice = center.worker("alice")
    task = center.task()
    assert center.get_task(task).task_queue_sid == q1
    assert center.pending_reservation(task).worker_sid == alice


def test_skip_if_one_equals_one_skips_when_the_available_workers_are_busy(center):
    q1, q2 = center.queue("Q1", "team == 'one'"), center.queue("Q2", "team == 'two'")
    center.workflow(filters=[route("step == 'first'", {"queue": q1}),
                             route("1==1", {"queue": q1, "skip_if": "1==1"}, {"queue": q2})])
    center.worker("alice", {"team": "one"})
    center.task({"step": "first"})  # alice's only unit of capacity
    task = center.task()
    assert center.get_task(task).task_queue_sid == q2


def test_skip_if_workers_available_counts_busy_workers_as_available(center):
    q1, q2 = center.queue("Q1", "team == 'one'"), center.queue("Q2", "team == 'two'")
    center.workflow(filters=[route("step == 'first'", {"queue": q1}),
                             route("1==1", {"queue": q1, "skip_if": "workers.available == 0"}, {"queue": q2})])
    center.worker("alice", {"team": "one"})
    center.task({"step": "first"})
    task = center.task()
    assert center.get_task(task).task_queue_sid == q1


def test_skip_if_counts_an_activity_nobody_is_in_as_zero(center):
    """`workers.<WA sid> < 1`: the count of an activity with no worker of the queue in it is 0, not null
    (null < 1 is false, and the task would wait in a queue nobody staffs)."""
    q1, q2 = center.queue("Q1", "team == 'a'"), center.queue("Q2", "team == 'b'")
    center.workflow(filters=[route("1==1", {"queue": q1, "skip_if": f"workers.{center.available} < 1"}, {"queue": q2})])
    center.worker("a1", {"team": "a"}, available=False)
    b1 = center.worker("b1", {"team": "b"})
    task = center.task()
    assert center.get_task(task).task_queue_sid == q2
    assert center.pending_reservation(task).worker_sid == b1


def test_skip_if_counts_workers_by_activity_sid(center):
    q1, q2 = center.queue("Q1", "team == 'one'"), center.queue("Q2", "team == 'two'")
    on_break = center.activity("Break", available=False)
    center.workflow(filters=[route("1==1", {"queue": q1, "skip_if": f"workers.{on_break} >= 1"}, {"queue": q2})])
    alice = center.worker("alice", {"team": "one"}, available=False)
    center.set_activity(alice, "Break")
    task = center.task()
    assert center.get_task(task).task_queue_sid == q2


def test_skip_if_on_an_activity_nobody_is_in_does_not_skip(center):
    q1, q2 = center.queue("Q1", "team == 'one'"), center.queue("Q2", "team == 'two'")
    on_break = center.activity("Break", available=False)
    center.workflow(filters=[route("1==1", {"queue": q1, "skip_if": f"workers.{on_break} >= 1"}, {"queue": q2})])
    center.worker("alice", {"team": "one"}, available=False)  # Offline, not on Break
    task = center.task()
    assert center.get_task(task).task_queue_sid == q1


def test_skipping_out_of_a_filter_tries_the_next_matching_filter(center):
    q1, q2 = center.queue("Q1"), center.queue("Q2")
    center.workflow(filters=[route("1==1", {"queue": q1, "skip_if": "workers.available == 0"}),
                             route("1==1", {"queue": q2})])
    task = center.task()
    assert center.get_task(task).task_queue_sid == q2


def test_skipping_out_of_the_last_filter_goes_to_the_default_filter(center):
    q1, general = center.queue("Q1"), center.queue("General")
    center.workflow(filters=[route("1==1", {"queue": q1, "skip_if": "workers.available == 0"})], default=general)
    task = center.task()
    assert center.get_task(task).task_queue_sid == general


def test_skipping_out_of_the_last_filter_without_default_cancels_the_task(center):
    q1 = center.queue("Q1")
    center.workflow(filters=[route("1==1", {"queue": q1, "skip_if": "workers.available == 0"})])
    task = center.task()
    canceled = center.get_task(task)
    assert (canceled.assignment_status, canceled.reason) == ("canceled", "Workflow Skipped")
    assert center.event_types(task_sid=task)[-2:] == ["workflow.skipped", "task.canceled"]


# -- known workers and target expressions ----------------------------------------------------------

def test_known_worker_sid_routes_to_that_worker(center):
    support = center.queue("Support")
    center.workflow(filters=[route("1==1", {"queue": support, "known_worker_sid": "task.agent_sid"})])
    center.worker("alice")
    bob = center.worker("bob")
    task = center.task({"agent_sid": bob})
    assert center.pending_reservation(task).worker_sid == bob


def test_known_worker_who_is_unavailable_is_waited_for(center):
    support = center.queue("Support")
    center.workflow(filters=[route("1==1", {"queue": support, "known_worker_sid": "task.agent_sid"})])
    center.worker("alice")
    bob = center.worker("bob", available=False)
    task = center.task({"agent_sid": bob})
    assert center.reservations(task_sid=task) == []
    center.set_activity(bob, "Available")
    assert center.pending_reservation(task).worker_sid == bob


def test_known_worker_friendly_name_routes_to_that_worker(center):
    support = center.queue("Support")
    center.workflow(filters=[route("1==1", {"queue": support, "known_worker_friendly_name": "task.agent"})])
    center.worker("alice")
    bob = center.worker("bob")
    task = center.task({"agent": "bob"})
    assert center.pending_reservation(task).worker_sid == bob


def test_target_expression_compares_task_and_worker_attributes(center):
    support = center.queue("Support")
    center.workflow(filters=[route("1==1", {"queue": support,
                                            "expression": "task.language IN worker.languages"})])
    center.worker("alice", {"languages": ["en"]})
    bob = center.worker("bob", {"languages": ["en", "es"]})
    task = center.task({"language": "es"})
    assert center.pending_reservation(task).worker_sid == bob


def test_target_expression_reads_worker_channel_assigned_tasks(center):
    support = center.queue("Support")
    center.workflow(filters=[route("type == 'chat'", {"queue": support,
                                                      "expression": "worker.channel.voice.assigned_tasks == 0"})],
                    default=support)
    alice = center.worker("alice")
    center.advance(1)
    bob = center.worker("bob")  # alice has been idle longer on every channel
    call = center.task({"type": "call"}, task_channel="voice")
    assert center.pending_reservation(call).worker_sid == alice
    center.accept(center.pending_reservation(call).sid)
    chat = center.task({"type": "chat"}, task_channel="chat")
    assert center.pending_reservation(chat).worker_sid == bob


def test_target_expression_reads_worker_activity_name(center):
    support = center.queue("Support")
    center.activity("Generally Available", available=True)
    center.workflow(filters=[route("1==1", {"queue": support,
                                            "expression": "worker.activity_name == 'Generally Available'"})])
    center.worker("alice")
    bob = center.worker("bob", available=False)
    center.set_activity(bob, "Generally Available")
    task = center.task()
    assert center.pending_reservation(task).worker_sid == bob



def test_worker_refused_by_a_target_expression_is_judged_again_after_their_attributes_change(center):
    # Verdicts on worker-only expressions are remembered per worker; new attributes must count at once.
    vip = center.queue("VIP")
    center.workflow(filters=[route("1==1", {"queue": vip, "expression": "worker.level >= 3"})])
    alice = center.worker("alice", {"level": 1})
    first = center.task()
    assert center.reservations(task_sid=first) == []
    workers.update_worker(center.router, center.ws, alice, attributes=json.dumps({"level": 3}))
    assert center.pending_reservation(first).worker_sid == alice
    center.accept(center.pending_reservation(first).sid)
    center.complete(first)
    workers.update_worker(center.router, center.ws, alice, attributes=json.dumps({"level": 2}))
    second = center.task()
    assert center.reservations(task_sid=second) == []


def test_worker_refused_on_activity_name_is_judged_again_after_an_activity_change(center):
    support = center.queue("Support")
    center.activity("Generally Available", available=True)
    center.workflow(filters=[route("1==1", {"queue": support,
                                            "expression": "worker.activity_name == 'Generally Available'"})])
    alice = center.worker("alice")
    task = center.task()
    assert center.reservations(task_sid=task) == []
    center.set_activity(alice, "Generally Available")
    assert center.pending_reservation(task).worker_sid == alice

# -- routing again ---------------------------------------------------------------------------------

def test_workflow_update_with_re_evaluate_tasks_reroutes_waiting_tasks(center):
    old, new = center.queue("Old"), center.queue("New")
    workflow = center.workflow(default=old)
    task = center.task()
    workflows.update_workflow(center.router, center.ws, workflow,
                              configuration=configuration(default={"queue": new}), re_evaluate_tasks=True)
    assert center.get_task(task).task_queue_sid == new


def test_workflow_update_without_re_evaluate_tasks_leaves_waiting_tasks_in_place(center):
    old, new = center.queue("Old"), center.queue("New")
    workflow = center.workflow(default=old)
    task = center.task()
    workflows.update_workflow(center.router, center.ws, workflow, configuration=configuration(default={"queue": new}))
    assert center.get_task(task).task_queue_sid == old


def test_workflow_update_without_re_evaluate_tasks_offers_a_waiting_task_its_new_target_allows(center):
    """The task keeps its step, but the step's target expression changed: a worker the old one refused may
    take it now. Nothing looked again before, and the task waited for a worker idle beside it."""
    tier = center.queue("Tier")
    workflow = center.workflow(filters=[route("1==1", {"queue": tier, "expression": "worker.level > 5"})])
    alice = center.worker("alice", {"level": 1})
    task = center.task()
    assert center.reservations(task_sid=task) == []
    workflows.update_workflow(center.router, center.ws, workflow, configuration=configuration(
        route("1==1", {"queue": tier, "expression": "worker.level > 0"})))
    assert center.pending_reservation(task).worker_sid == alice


def test_workflow_update_that_leaves_a_task_without_a_step_offers_it_to_its_queue(center):
    tier, other = center.queue("Tier"), center.queue("Other")
    workflow = center.workflow(filters=[route("1==1", {"queue": tier, "expression": "worker.level > 5"})])
    alice = center.worker("alice", {"level": 1})
    task = center.task()
    workflows.update_workflow(center.router, center.ws, workflow, configuration=configuration(default={"queue": other}))
    assert center.get_task(task).task_queue_sid == tier  # kept in its queue, without the old target's expression
    assert center.pending_reservation(task).worker_sid == alice


def test_a_priority_update_does_not_override_the_priority_of_the_target_the_task_is_in(center):
    """TaskRouter's UpdateTask: the task "takes on the specified priority unless it matches a Workflow Target
    with a Priority set". Outside such a target, the update stands."""
    vip, general = center.queue("VIP"), center.queue("General")
    center.workflow(filters=[route("vip == true", {"queue": vip, "priority": 10})], default=general)
    vip_task, other = center.task({"vip": True}, priority=1), center.task({"vip": False}, priority=1)
    assert center.get_task(vip_task).priority == 10
    tasks.update_task(center.router, center.ws, vip_task, priority=3)
    tasks.update_task(center.router, center.ws, other, priority=3)
    assert (center.get_task(vip_task).priority, center.get_task(other).priority) == (10, 3)
    # With attributes that route it to a target without a priority, the new priority is the task's.
    tasks.update_task(center.router, center.ws, vip_task, attributes=json.dumps({"vip": False}), priority=7)
    assert (center.get_task(vip_task).task_queue_sid, center.get_task(vip_task).priority) == (general, 7)


def _support_and_sales(center):
    support_q, everyone_q = center.queue("Support", "team == 'support'"), center.queue("Everyone", "team == 'support'")
    sales_q, overflow_q = center.queue("Sales", "team == 'sales'"), center.queue("Sales overflow", "team == 'sales'")
    support = {"filter_friendly_name": "support", "expression": "type == 'support'",
               "targets": [{"queue": support_q, "timeout": 10}, {"queue": everyone_q}]}
    sales = {"filter_friendly_name": "sales", "expression": "type == 'sales'",
             "targets": [{"queue": sales_q, "timeout": 5}, {"queue": overflow_q}]}
    return support, sales, (support_q, everyone_q, sales_q, overflow_q)


def test_a_filter_added_above_a_waiting_task_does_not_move_it_into_that_filter(center):
    """Without ReEvaluateTasks, the task's step is found again in the new configuration: at its timeout it goes
    on in its own filter, not in whatever filter now has its old index."""
    support, sales, (support_q, everyone_q, *_) = _support_and_sales(center)
    workflow = center.workflow(filters=[support])
    task = center.task({"type": "support"})
    workflows.update_workflow(center.router, center.ws, workflow, configuration=configuration(sales, support))
    assert center.get_task(task).task_queue_sid == support_q
    center.advance(10)
    assert center.get_task(task).task_queue_sid == everyone_q


def test_a_filter_removed_above_a_waiting_task_does_not_cancel_it_at_its_timeout(center):
    support, sales, (_support_q, everyone_q, *_) = _support_and_sales(center)
    workflow = center.workflow(filters=[sales, support])
    task = center.task({"type": "support"})
    workflows.update_workflow(center.router, center.ws, workflow, configuration=configuration(support))
    center.advance(10)
    task_row = center.get_task(task)
    assert (task_row.assignment_status, task_row.task_queue_sid) == ("pending", everyone_q)


def test_a_reordered_workflow_keeps_a_waiting_task_and_its_offer_where_they_are(center):
    support, sales, (support_q, *_) = _support_and_sales(center)
    workflow = center.workflow(filters=[support, sales])
    sue = center.worker("sue", {"team": "support"})
    task = center.task({"type": "support"})
    offer = center.pending_reservation(task).sid
    workflows.update_workflow(center.router, center.ws, workflow, configuration=configuration(sales, support))
    assert center.get_task(task).task_queue_sid == support_q
    assert center.pending_reservation(task).sid == offer and center.pending_reservation(task).worker_sid == sue


def test_a_task_whose_step_is_gone_stays_put_until_the_step_ends_then_follows_the_new_configuration(center):
    support, _sales, (support_q, _everyone_q, sales_q, _) = _support_and_sales(center)
    workflow = center.workflow(filters=[support])
    task = center.task({"type": "support"})
    center.advance(4)
    rerouted = {"filter_friendly_name": "support", "expression": "type == 'support'", "targets": [{"queue": sales_q}]}
    workflows.update_workflow(center.router, center.ws, workflow, configuration=configuration(rerouted))
    assert center.get_task(task).task_queue_sid == support_q  # not re-evaluated now
    explained = explain_task(center.router, center.ws, task)
    assert "before the workflow's last update" in explained.summary
    assert [f.outcome for f in explained.filters] == ["not_evaluated"]
    center.advance(5)
    assert center.get_task(task).task_queue_sid == support_q
    center.advance(1)  # its old step's end: routed by the new configuration
    assert center.get_task(task).task_queue_sid == sales_q


def test_task_attribute_update_reroutes_a_waiting_task(center):
    sales, general = center.queue("Sales"), center.queue("General")
    center.workflow(filters=[route("type == 'sales'", {"queue": sales})], default=general)
    task = center.task({"type": "billing"})
    update_attributes(center, task, {"type": "sales"})
    assert center.get_task(task).task_queue_sid == sales


def test_task_attribute_update_withdraws_the_offer_made_in_the_old_queue(center):
    sales, general = center.queue("Sales", "team == 'sales'"), center.queue("General", "team == 'general'")
    center.workflow(filters=[route("type == 'sales'", {"queue": sales})], default=general)
    center.worker("gina", {"team": "general"})
    sam = center.worker("sam", {"team": "sales"})
    task = center.task({"type": "billing"})
    first = center.pending_reservation(task).sid
    update_attributes(center, task, {"type": "sales"})
    statuses = {r.sid: r.reservation_status for r in center.reservations(task_sid=task)}
    assert statuses[first] == "canceled"
    assert center.pending_reservation(task).worker_sid == sam
