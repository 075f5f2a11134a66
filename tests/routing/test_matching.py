"""Matching: which available worker gets which waiting task, and when."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import delete, insert

from callcenter.routing import ReservationNotPending, matching, queues, tasks, workers, workspaces
from callcenter.routing.invariants import check_invariants
from callcenter.routing.models import Reservation, Task, Worker, WorkerChannel
from tests.routing.conftest import Center, on_a_call_with_a_chat_waiting


@pytest.fixture
def single_tasking(router, clock):
    """A workspace created with multitasking off: one task at a time per worker, across channels."""
    center = Center(router, clock, multi_task_enabled=False)
    yield center
    center.assert_consistent()


def set_channel(center, worker_sid, channel, **changes):
    return workers.update_worker_channel(center.router, center.ws, worker_sid, channel, **changes)


def route(expression, *targets):
    return {"filter_friendly_name": "Route", "expression": expression, "targets": list(targets)}


def reserved_worker(center, task_sid):
    return center.pending_reservation(task_sid).worker_sid


def serve(center, worker_sid):
    """Accept and complete the worker's pending reservation; return the task it was for."""
    [reservation] = center.reservations(worker_sid=worker_sid, status="pending")
    center.accept(reservation.sid)
    center.complete(reservation.task_sid)
    return reservation.task_sid


def served_in_order(center, worker_sid, count):
    return [serve(center, worker_sid) for _ in range(count)]


# -- who is eligible -------------------------------------------------------------------------------

def test_worker_in_an_unavailable_activity_is_not_reserved(center):
    center.workflow(default=center.queue())
    center.worker("alice", available=False)
    task = center.task()
    assert center.reservations(task_sid=task) == []
    assert center.get_task(task).assignment_status == "pending"


def test_worker_whose_channel_is_unavailable_is_not_reserved(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    set_channel(center, alice, "voice", available=False)
    task = center.task(task_channel="voice")
    assert center.reservations(task_sid=task) == []


def test_worker_without_free_capacity_is_not_reserved(center):
    center.workflow(default=center.queue())
    center.worker("alice")
    center.task()
    second = center.task()
    assert center.reservations(task_sid=second) == []


def test_worker_outside_the_queue_is_not_reserved(center):
    center.workflow(default=center.queue("Spanish", "languages HAS 'es'"))
    center.worker("alice", {"languages": ["en"]})
    task = center.task()
    assert center.reservations(task_sid=task) == []


# -- which worker: longest idle --------------------------------------------------------------------

def test_longest_idle_worker_is_reserved_first(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    center.advance(5)
    center.worker("bob")
    assert reserved_worker(center, center.task()) == alice


def test_worker_who_just_finished_a_task_waits_behind_one_idle_longer(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    center.advance(1)
    bob = center.worker("bob")
    center.advance(1)
    first = center.task()
    assert reserved_worker(center, first) == alice
    center.advance(10)
    serve(center, alice)  # alice is idle again from now on; bob has been since t=1
    center.advance(10)
    assert reserved_worker(center, center.task()) == bob


def test_idle_time_counts_from_becoming_available(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    center.advance(5)
    bob = center.worker("bob")
    center.advance(5)
    center.set_activity(alice, "Offline")
    center.set_activity(alice, "Available")  # alice has waited less than bob now
    center.advance(5)
    assert reserved_worker(center, center.task()) == bob



@pytest.mark.parametrize("refused", [9, 45])
def test_a_target_expression_refusing_the_longest_idle_pages_on_to_the_first_it_accepts(center, refused):
    # A target with an expression reads candidates in batches (8, then 16, then 32 rows...): the first
    # worker it accepts is found past one or two batch boundaries, and each batch starts where the last
    # one ended, in (idle since, sid) order. Everyone here became available at the same instant, so
    # every boundary falls inside a tie that only the sid breaks.
    queue = center.queue()
    center.workflow(filters=[route("1==1", {"queue": queue, "expression": "worker.level >= 3"})])
    staff = sorted(center.worker(f"agent{number}", {"level": 1}) for number in range(refused + 3))
    wanted = staff[refused]  # preceded by `refused` workers the expression turns away
    for later in (wanted, *staff[refused + 1:]):
        workers.update_worker(center.router, center.ws, later, attributes=json.dumps({"level": 3}))
    assert reserved_worker(center, center.task()) == wanted
    assert reserved_worker(center, center.task()) == staff[refused + 1]


def test_candidates_longest_idle_first_come_in_batches_without_gaps_or_repeats(center):
    # Every available member of the queue, in order, each once: the batches end and resume at ties.
    queue = center.queue()
    center.workflow(default=queue)
    staff = []
    for group in range(5):
        staff += sorted(center.worker(f"agent{group}-{number}") for number in range(9))
        center.advance(1)
    task_sid = center.task(task_channel="voice")  # reserves staff[0]; the rest are still candidates
    with center.router.transaction(center.ws) as tx:
        task = tx.session.get(Task, task_sid)
        found = [row.sid for row in matching.candidate_workers(tx, task, queue, first_batch=2)]
    assert found == staff[1:]


# -- which worker: order_by ------------------------------------------------------------------------

def test_order_by_ascending_offers_the_lowest_value_first(center):
    queue = center.queue()
    center.workflow(filters=[route("1==1", {"queue": queue, "order_by": "worker.level ASC"})])
    center.worker("alice", {"level": 5})
    center.advance(1)
    bob = center.worker("bob", {"level": 2})
    assert reserved_worker(center, center.task()) == bob


def test_order_by_descending_offers_the_highest_value_first(center):
    queue = center.queue()
    center.workflow(filters=[route("1==1", {"queue": queue, "order_by": "worker.level DESC"})])
    center.worker("alice", {"level": 2})
    center.advance(1)
    bob = center.worker("bob", {"level": 5})
    assert reserved_worker(center, center.task()) == bob


def test_order_by_later_clause_breaks_ties_as_documented(center):
    # Reference §3.5: "worker.finance ASC, worker.support ASC", Alice {10, 8}, Bob {10, 5} => Bob first.
    queue = center.queue()
    center.workflow(filters=[route("1==1", {"queue": queue, "order_by": "worker.finance ASC, worker.support ASC"})])
    center.worker("Alice", {"finance": 10, "support": 8})
    center.advance(1)
    bob = center.worker("Bob", {"finance": 10, "support": 5})
    assert reserved_worker(center, center.task()) == bob


def test_order_by_puts_workers_missing_the_attribute_last_when_descending(center):
    queue = center.queue()
    center.workflow(filters=[route("1==1", {"queue": queue, "order_by": "worker.level DESC"})])
    center.worker("alice", {})
    center.advance(1)
    bob = center.worker("bob", {"level": 1})
    assert reserved_worker(center, center.task()) == bob


def test_order_by_puts_workers_missing_the_attribute_last_when_ascending(center):
    queue = center.queue()
    center.workflow(filters=[route("1==1", {"queue": queue, "order_by": "worker.level ASC"})])
    center.worker("alice", {"level": "high"})  # not an integer: treated as missing
    center.advance(1)
    bob = center.worker("bob", {"level": 9})
    assert reserved_worker(center, center.task()) == bob


def test_order_by_ties_fall_back_to_longest_idle(center):
    queue = center.queue()
    center.workflow(filters=[route("1==1", {"queue": queue, "order_by": "worker.level ASC"})])
    alice = center.worker("alice", {"level": 3})
    center.advance(1)
    center.worker("bob", {"level": 3})
    assert reserved_worker(center, center.task()) == alice


# -- which task ------------------------------------------------------------------------------------

def test_fifo_queue_serves_higher_priority_first_then_oldest(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice", available=False)
    low = center.task(priority=0)
    center.advance(1)
    high_old = center.task(priority=5)
    center.advance(1)
    high_new = center.task(priority=5)
    center.set_activity(alice, "Available")
    assert served_in_order(center, alice, 3) == [high_old, high_new, low]


def test_lifo_queue_serves_newest_first_ignoring_priority(center):
    center.workflow(default=center.queue(task_order="LIFO"))
    alice = center.worker("alice", available=False)
    urgent_old = center.task(priority=10)
    center.advance(1)
    middle = center.task(priority=0)
    center.advance(1)
    newest = center.task(priority=0)
    center.set_activity(alice, "Available")
    assert served_in_order(center, alice, 3) == [newest, middle, urgent_old]


def test_lifo_queues_read_in_several_statements_still_serve_newest_first(center):
    """A worker in 11 LIFO queues on 5 channels: 55 (queue, channel) pairs, more than one statement reads
    (HEADS_PER_STATEMENT), so the statements' answers are merged newest first."""
    lifo = [center.queue(f"Lifo {n}", task_order="LIFO") for n in range(11)]
    center.workflow(filters=[route(f"q == {n}", {"queue": sid}) for n, sid in enumerate(lifo)])
    alice = center.worker("alice", available=False)
    made = []
    for n in (3, 10, 0, 7, 3, 5):
        made.append(center.task({"q": n}, priority=n))  # priority does not count in a LIFO queue
        center.advance(1)
    center.set_activity(alice, "Available")
    assert served_in_order(center, alice, len(made)) == made[::-1]


@pytest.mark.parametrize("order", ["FIFO", "LIFO"])
def test_each_queue_order_reads_its_queue_heads_off_an_index(center, router, order):
    """Never by sorting a queue's whole backlog (86 ms a worker with 10,000 waiting in each LIFO queue before
    ix_tasks_waiting_lifo). SQLite's plan says which index serves each (queue, channel) pair."""
    if router.writer.dialect.name != "sqlite":
        pytest.skip("the query plan checked is SQLite's; PostgreSQL reads the same index backwards")
    query = matching._queue_heads_query(order, 2)
    params = {"worker_sid": "WK", "size": 4, "offset": 0, "depth": 4,
              **{f"{name}_{n}": value for n in range(2) for name, value in (("queue", "WQ"), ("channel", "TC"),
                                                                             ("max", 1))}}
    with router.writer.connect() as connection:
        compiled = query.compile(dialect=connection.dialect)
        values = compiled.construct_params(params)
        plan = [row[-1] for row in connection.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + str(compiled), tuple(values[key] for key in compiled.positiontup))]
    index = "ix_tasks_waiting_order" if order == "FIFO" else "ix_tasks_waiting_lifo"
    heads = [line for line in plan if line.startswith("SEARCH tasks USING")]
    assert sum(index in line for line in heads) == 2, plan
    # the only sort is of the few rows merged at the end
    assert sum("TEMP B-TREE" in line for line in plan) == 1 and plan[-1] == "USE TEMP B-TREE FOR ORDER BY", plan


def test_fifo_queue_orders_by_virtual_start_time(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice", available=False)
    newer = center.task()
    center.advance(60)
    earlier_start = center.clock.now() - timedelta(seconds=120)
    recreated = center.task(virtual_start_time=earlier_start)
    center.set_activity(alice, "Available")
    assert reserved_worker(center, recreated) == alice
    assert center.reservations(task_sid=newer) == []


def _fifo_and_lifo_tasks(center):
    fifo, lifo = center.queue("Fifo"), center.queue("Lifo", task_order="LIFO")
    center.workflow(filters=[route("kind == 'fifo'", {"queue": fifo}), route("kind == 'lifo'", {"queue": lifo})])
    made = {}
    for name in ("F1", "L1", "F2", "L2"):
        made[name] = center.task({"kind": "fifo" if name[0] == "F" else "lifo"})
        center.advance(1)
    return made


@pytest.mark.parametrize("order, expected", [("FIFO", ["F1", "F2", "L2", "L1"]), ("LIFO", ["L2", "L1", "F1", "F2"])])
def test_prioritize_queue_order_decides_which_queue_type_is_served_first(center, order, expected):
    workspaces.update_workspace(center.router, center.ws, prioritize_queue_order=order)
    made = _fifo_and_lifo_tasks(center)
    alice = center.worker("alice", available=False)
    center.set_activity(alice, "Available")
    names = {sid: name for name, sid in made.items()}
    assert [names[sid] for sid in served_in_order(center, alice, 4)] == expected


# -- tasks woken together go in serving order (DESIGN rule 6) ------------------------------------------

def pending_worker(center, task_sid):
    return [r.worker_sid for r in center.reservations(task_sid=task_sid, status="pending")]


def test_tasks_woken_by_a_queue_change_are_served_by_priority_not_wake_order(center):
    queue = center.queue("Q", target_workers="skill == 'x'")
    center.workflow(default=queue)
    alice = center.worker("alice", {"skill": "y"})
    low = center.task(priority=0)
    high = center.task(priority=10)
    queues.update_task_queue(center.router, center.ws, queue, target_workers="skill == 'y'")
    assert (pending_worker(center, high), pending_worker(center, low)) == ([alice], [])


def test_a_task_moved_by_its_target_timeout_does_not_jump_a_higher_priority_task(center):
    q1, q2 = center.queue("Q1"), center.queue("Q2")
    center.workflow(filters=[route("vip == true", {"queue": q1, "timeout": 10}, {"queue": q2}),
                             route("1==1", {"queue": q2})])
    alice = center.worker("alice")
    moved = center.task({"vip": True}, priority=0)
    assert pending_worker(center, moved) == [alice]
    waiting = center.task({"vip": False}, priority=50)
    center.advance(10)  # the offer to alice is canceled, and the task moves to Q2, behind the waiting one
    assert (pending_worker(center, waiting), pending_worker(center, moved)) == ([alice], [])


def test_an_attributes_update_of_a_reserved_task_does_not_let_it_jump_the_line(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    low = center.task({"n": 1}, priority=0)
    high = center.task({"n": 2}, priority=10)
    assert pending_worker(center, low) == [alice]
    tasks.update_task(center.router, center.ws, low, attributes=json.dumps({"n": 1, "ivr": "done"}))
    assert (pending_worker(center, high), pending_worker(center, low)) == ([alice], [])


def test_a_task_moved_while_its_worker_is_freed_still_goes_to_the_longest_idle_worker(center):
    q1, q2 = center.queue("Q1", "team == 'a'"), center.queue("Q2")
    center.workflow(filters=[route("vip == true", {"queue": q1, "timeout": 10}, {"queue": q2}),
                             route("1==1", {"queue": q2})])
    bob = center.worker("bob", {"team": "b"})  # idle longest, but not in Q1
    center.advance(1)
    alice = center.worker("alice", {"team": "a"})
    moved = center.task({"vip": True})
    assert pending_worker(center, moved) == [alice]
    center.advance(10)  # to Q2: alice (freed by the move) and bob can both take it
    assert pending_worker(center, moved) == [bob]


# -- several reservations per task -----------------------------------------------------------------

def _three_workers_and_a_broadcast_task(center):
    center.workflow(default=center.queue(max_reserved_workers=3))
    team = []
    for name in ("alice", "bob", "carol"):
        team.append(center.worker(name))
        center.advance(1)
    return team, center.task()


def test_max_reserved_workers_reserves_several_workers(center):
    team, task = _three_workers_and_a_broadcast_task(center)
    reserved = {r.worker_sid for r in center.reservations(task_sid=task, status="pending")}
    assert reserved == set(team)
    assert center.event_types(task_sid=task).count("reservation.created") == 3


def test_first_accept_rescinds_the_other_reservations(center):
    _, task = _three_workers_and_a_broadcast_task(center)
    first = center.reservations(task_sid=task)[0]
    center.accept(first.sid)
    statuses = [r.reservation_status for r in center.reservations(task_sid=task)]
    assert statuses == ["accepted", "rescinded", "rescinded"]
    assert center.event_types(task_sid=task).count("reservation.rescinded") == 2


def test_accepting_a_rescinded_reservation_is_refused_with_410(center):
    _, task = _three_workers_and_a_broadcast_task(center)
    first, second, _ = center.reservations(task_sid=task)
    center.accept(first.sid)
    with pytest.raises(ReservationNotPending) as caught:
        center.accept(second.sid)
    assert caught.value.status == 410
    assert center.get_task(task).assignment_status == "assigned"


def test_rescinded_workers_are_offered_the_next_waiting_task(center):
    _, task = _three_workers_and_a_broadcast_task(center)
    waiting = center.task()  # nobody has capacity left
    first, second, third = center.reservations(task_sid=task)
    center.accept(first.sid)
    offered = {r.worker_sid for r in center.reservations(task_sid=waiting, status="pending")}
    assert offered == {second.worker_sid, third.worker_sid}


def test_task_stays_reserved_until_every_reservation_has_ended(center):
    _, task = _three_workers_and_a_broadcast_task(center)
    first, second, third = center.reservations(task_sid=task)
    center.reject(first.sid)
    center.reject(second.sid)
    assert center.get_task(task).assignment_status == "reserved"
    center.reject(third.sid)
    assert center.get_task(task).assignment_status == "pending"


# -- multitasking capacity -------------------------------------------------------------------------

def test_capacity_two_on_chat_takes_two_chat_tasks(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    set_channel(center, alice, "chat", capacity=2)
    tasks = [center.task(task_channel="chat") for _ in range(3)]
    assert [len(center.reservations(task_sid=t)) for t in tasks] == [1, 1, 0]


def test_capacity_zero_takes_no_tasks(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    set_channel(center, alice, "chat", capacity=0)
    task = center.task(task_channel="chat")
    assert center.reservations(task_sid=task) == []


def test_channel_marked_unavailable_takes_no_tasks_but_other_channels_do(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    set_channel(center, alice, "chat", available=False)
    chat = center.task(task_channel="chat")
    call = center.task(task_channel="voice")
    assert center.reservations(task_sid=chat) == []
    assert reserved_worker(center, call) == alice


def test_multitasking_worker_takes_tasks_on_several_channels_at_once(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    call = center.task(task_channel="voice")
    chat = center.task(task_channel="chat")
    assert reserved_worker(center, call) == alice
    assert reserved_worker(center, chat) == alice


def test_capacity_lowered_below_what_a_worker_holds_takes_no_more_until_they_are_under_it(center):
    """TaskRouter lets capacity go below the load (the worker finishes what they hold); the invariant checker
    called that a violation. A reservation made while over capacity would still be one."""
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    set_channel(center, alice, "default", capacity=3)
    held = [center.task() for _ in range(3)]
    for task in held:
        center.accept(center.pending_reservation(task).sid)
    set_channel(center, alice, "default", capacity=1)
    waiting = center.task()
    assert center.reservations(task_sid=waiting) == []
    assert check_invariants(center.router, center.ws) == []
    center.complete(held[0])
    center.complete(held[1])
    assert center.reservations(task_sid=waiting) == []  # still at capacity: 1 of 1
    center.complete(held[2])
    assert center.pending_reservation(waiting).worker_sid == alice


def test_the_checker_still_finds_a_reservation_made_over_a_lowered_capacity(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    set_channel(center, alice, "default", capacity=2)
    first = center.task()
    set_channel(center, alice, "default", capacity=1)
    center.clock.advance(1)
    second = center.task()
    channel_sid = center.channel(alice, "default").sid
    with center.router.transaction(center.ws) as tx:  # as a matching bug would: a second offer at capacity 1
        from callcenter.routing.reservations import create_reservation

        task, worker = tx.session.get(Task, second), tx.session.get(Worker, alice)
        create_reservation(tx, task, worker, tx.session.get(WorkerChannel, channel_sid), tx.queue(task.task_queue_sid))
    center.assert_consistent = lambda: None  # broken on purpose
    assert center.pending_reservation(first).worker_sid == alice
    channel = center.channel(alice, "default").task_channel_sid
    assert [problem for problem in check_invariants(center.router, center.ws) if "capacity" in problem] == [
        f"worker {alice} holds 2 reservations on channel {channel} with capacity 1"]


def test_raising_capacity_offers_a_waiting_task(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    center.task(task_channel="chat")
    waiting = center.task(task_channel="chat")
    set_channel(center, alice, "chat", capacity=2)
    assert reserved_worker(center, waiting) == alice


def test_multitasking_workspace_leaves_the_activity_alone_on_reserve(center):
    reserved = center.activity("Reserved", available=False)
    center.workflow(default=center.queue(reservation_activity_sid=reserved))
    alice = center.worker("alice")
    center.task()
    assert center.activity_name(alice) == "Available"


# -- single-tasking workspaces ---------------------------------------------------------------------

def test_single_tasking_worker_takes_one_task_across_channels(single_tasking):
    center = single_tasking
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    call = center.task(task_channel="voice")
    chat = center.task(task_channel="chat")
    assert reserved_worker(center, call) == alice
    assert center.reservations(task_sid=chat) == []


def test_single_tasking_worker_gets_the_next_task_after_finishing(single_tasking):
    center = single_tasking
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    call = center.task(task_channel="voice")
    chat = center.task(task_channel="chat")
    assert serve(center, alice) == call
    assert reserved_worker(center, chat) == alice


def test_single_tasking_reservation_moves_worker_to_queue_reservation_activity(single_tasking):
    center = single_tasking
    reserved = center.activity("Reserved", available=False)
    center.workflow(default=center.queue(reservation_activity_sid=reserved))
    alice = center.worker("alice")
    center.task()
    assert center.activity_name(alice) == "Reserved"


def test_single_tasking_accept_moves_worker_to_queue_assignment_activity(single_tasking):
    center = single_tasking
    reserved, busy = center.activity("Reserved", available=False), center.activity("Busy", available=False)
    center.workflow(default=center.queue(reservation_activity_sid=reserved, assignment_activity_sid=busy))
    alice = center.worker("alice")
    task = center.task()
    center.accept(center.pending_reservation(task).sid)
    assert center.activity_name(alice) == "Busy"


def test_single_tasking_reject_returns_worker_to_the_activity_before_the_reservation(single_tasking):
    center = single_tasking
    reserved = center.activity("Reserved", available=False)
    center.workflow(default=center.queue(reservation_activity_sid=reserved))
    alice = center.worker("alice")
    task = center.task()
    center.reject(center.pending_reservation(task).sid)
    assert center.activity_name(alice) == "Available"
    assert center.reservations(task_sid=task, status="pending") == []


# -- rejections ------------------------------------------------------------------------------------

def test_rejected_task_is_offered_to_the_next_worker(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    center.advance(1)
    bob = center.worker("bob")
    task = center.task()
    assert reserved_worker(center, task) == alice
    center.reject(center.pending_reservation(task).sid)
    assert reserved_worker(center, task) == bob


def test_worker_who_rejected_is_not_offered_the_task_again_in_the_same_target(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    task = center.task()
    center.reject(center.pending_reservation(task).sid)
    center.advance(60)
    center.set_activity(alice, "Offline")
    center.set_activity(alice, "Available")
    assert center.reservations(task_sid=task, status="pending") == []


def test_worker_who_rejected_is_offered_the_task_again_once_it_moves_on(center):
    queue = center.queue()
    center.workflow(filters=[route("1==1", {"queue": queue, "timeout": 30}, {"timeout": 30})])
    alice = center.worker("alice")
    task = center.task()
    center.reject(center.pending_reservation(task).sid)
    center.advance(30)
    assert reserved_worker(center, task) == alice


# -- matching woken by changes ---------------------------------------------------------------------

def test_worker_becoming_available_picks_up_the_best_waiting_task(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice", available=False)
    center.task(priority=1)
    center.advance(1)
    best = center.task(priority=9)
    center.set_activity(alice, "Available")
    assert reserved_worker(center, best) == alice


def test_worker_whose_attributes_join_a_queue_picks_up_its_waiting_task(center):
    center.workflow(default=center.queue("Spanish", "languages HAS 'es'"))
    alice = center.worker("alice", {"languages": ["en"]})
    task = center.task()
    workers.update_worker(center.router, center.ws, alice, attributes=json.dumps({"languages": ["en", "es"]}))
    assert reserved_worker(center, task) == alice


def test_changing_queue_target_workers_rematches_its_waiting_tasks(center):
    queue = center.queue("Spanish", "languages HAS 'es'")
    center.workflow(default=queue)
    alice = center.worker("alice", {"languages": ["en"]})
    task = center.task()
    queues.update_task_queue(center.router, center.ws, queue, target_workers="languages HAS 'en'")
    assert reserved_worker(center, task) == alice


def test_worker_freed_by_completing_a_task_picks_up_the_waiting_one(center):
    center.workflow(default=center.queue())
    alice = center.worker("alice")
    center.task()
    waiting = center.task()
    serve(center, alice)
    assert reserved_worker(center, waiting) == alice


def test_a_new_task_channel_copies_each_workers_availability_and_the_checker_watches_the_copy(center):
    from sqlalchemy import select, update

    from callcenter.routing import workspaces
    from callcenter.routing.invariants import check_invariants
    from callcenter.routing.models import WorkerChannel

    offline = center.worker("offline", available=False)
    online = center.worker("online")
    channel = workspaces.create_task_channel(center.router, center.ws, friendly_name="Email", unique_name="email")
    with center.router.read() as session:
        copies = dict(session.execute(select(WorkerChannel.worker_sid, WorkerChannel.worker_available)
                                      .where(WorkerChannel.task_channel_sid == channel.sid)).all())
    assert copies == {offline: False, online: True}
    assert check_invariants(center.router, center.ws) == []
    with center.router.writer.begin() as connection:  # a copy stuck at False would hide an available worker
        connection.execute(update(WorkerChannel).where(WorkerChannel.worker_sid == online)
                           .values(worker_available=False))
    assert any("worker_available" in problem for problem in check_invariants(center.router, center.ws))
    with center.router.writer.begin() as connection:
        connection.execute(update(WorkerChannel).where(WorkerChannel.worker_sid == online)
                           .values(worker_available=True))


def test_a_worker_with_room_for_several_tasks_is_offered_one_task_once(center):
    center.workflow(default=center.queue(max_reserved_workers=3))
    alice = center.worker("alice")
    set_channel(center, alice, "chat", capacity=3)
    task = center.task(task_channel="chat")
    assert [r.worker_sid for r in center.reservations(task_sid=task, status="pending")] == [alice]
    bob = center.worker("bob")  # the next worker to come takes one of the two places left
    assert {r.worker_sid for r in center.reservations(task_sid=task, status="pending")} == {alice, bob}


def test_invariant_check_reports_a_task_offered_twice_to_one_worker(center):
    center.workflow(default=center.queue(max_reserved_workers=2))
    alice = center.worker("alice")
    set_channel(center, alice, "chat", capacity=2)
    task = center.task(task_channel="chat")
    [offer] = center.reservations(task_sid=task, status="pending")
    with center.router.writer.begin() as connection:
        row = {column.name: getattr(offer, column.name) for column in Reservation.__table__.columns}
        connection.execute(insert(Reservation), [{**row, "sid": "WR" + "1" * 32}])
    problems = check_invariants(center.router, center.ws)
    assert f"task {task} is offered to worker {alice} 2 times at once" in problems
    with center.router.writer.begin() as connection:
        connection.execute(delete(Reservation).where(Reservation.sid == "WR" + "1" * 32))


def test_turning_multitasking_on_offers_a_busy_worker_the_work_waiting_on_their_other_channels(single_tasking):
    center = single_tasking
    alice, chat = on_a_call_with_a_chat_waiting(center)
    assert center.reservations(task_sid=chat) == []  # one task at a time
    workspaces.update_workspace(center.router, center.ws, multi_task_enabled=True)
    assert reserved_worker(center, chat) == alice  # nothing else would have looked again
