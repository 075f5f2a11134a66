"""Several real processes, each with several threads, hammering two workspaces on one PostgreSQL database.

Each process has its own Router (its own connection pool, configuration cache and clock) and runs
four threads of random operations for a few seconds: tasks created, workers changing activity,
reservations accepted and rejected (some moving the worker away), tasks completed and canceled,
task attributes changed, and timers swept and callbacks delivered by every process at once, with
reservation timeouts, target timeouts and TTLs short enough to come due during the run.

Afterwards: the invariant check reports nothing, no timer fired twice (each process records what
it fired, after commit), no assignment callback was delivered twice, and a replay of the event log
in commit order shows no task accepted twice, no worker holding two reservations in the
single-tasking workspace and no channel over its capacity in the multi-tasking one, at any moment.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import threading
import time
import traceback
from collections import Counter, defaultdict

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from callcenter.routing import Router, reservations, tasks, workers
from callcenter.routing.clock import SystemClock
from callcenter.routing.errors import RoutingError
from callcenter.routing.invariants import check_invariants
from callcenter.routing.models import Event, OutboxMessage, Reservation, Task, Worker, WorkerChannel
from callcenter.routing.outbox import Response
from tests.conftest import POSTGRES_SKIP_REASON, POSTGRES_URL, _build_schema, _drop_postgres_database, _postgres_database
from tests.routing.conftest import Center

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not POSTGRES_URL, reason=POSTGRES_SKIP_REASON)]

PROCESSES = 4
THREADS = 4
RUN_SECONDS = 12.0
WORKERS_PER_WORKSPACE = 10
ASSIGNMENT_URL = "http://callbacks.invalid/assignment"


# -- the load, in each child process ---------------------------------------------------------------

def _hammer(url: str, layout: list[dict], seed: int, seconds: float, result_path: str) -> None:
    router = Router(url, clock=SystemClock())
    fired: list[tuple[str, str]] = []
    delivered: list[str] = []
    lock = threading.Lock()

    # Record each timer the sweep claims (its DELETE by id, kind, subject and due time), once committed.
    @sa_event.listens_for(router.writer, "after_execute")
    def _executed(connection, statement, multiparams, params, options, result):
        if getattr(statement, "is_delete", False) and statement.table.name == "timers" and result.rowcount == 1:
            bound = statement.compile().params
            if "due_at_1" in bound:
                connection.info.setdefault("fired", []).append(
                    (bound["kind_1"], bound["subject_sid_1"], bound["due_at_1"].isoformat()))

    @sa_event.listens_for(router.writer, "commit")
    def _committed(connection):
        done = connection.info.pop("fired", None)
        if done:
            with lock:
                fired.extend(done)

    @sa_event.listens_for(router.writer, "rollback")
    def _rolled_back(connection):
        connection.info.pop("fired", None)

    def transport(url, params, headers, timeout):
        with lock:
            delivered.append(params["ReservationSid"])
        return Response(200, "")  # no instruction: the reservation stays pending for the load to answer

    router.deliverer.transport = transport
    ops: Counter = Counter()
    refused: Counter = Counter()
    failures: list[str] = []
    stop_at = time.monotonic() + seconds

    def pick(session, query):
        rows = list(session.execute(query.limit(20)))
        return random.choice(rows) if rows else None

    def one(rng: random.Random) -> None:
        ws = rng.choice(layout)
        sid = ws["sid"]
        roll = rng.random()
        if roll < 0.22:
            ops["create"] += 1
            tasks.create_task(router, sid, workflow_sid=ws["workflow"], timeout=rng.choice([3, 6, 30, 600]),
                              task_channel=rng.choice(ws["channels"]),
                              attributes=json.dumps({"language": rng.choice(["en", "es", "fr"]),
                                                     "vip": rng.random() < 0.3}))
        elif roll < 0.40:
            ops["activity"] += 1
            name = rng.choices(["Available", "Unavailable", "Offline"], weights=[6, 2, 1])[0]
            workers.update_worker(router, sid, rng.choice(ws["workers"]), activity_sid=ws["activities"][name],
                                  reject_pending_reservations=rng.random() < 0.2 and name != "Available")
        elif roll < 0.58:
            with router.read() as session:
                row = pick(session, select(Reservation.sid).where(
                    Reservation.workspace_sid == sid, Reservation.reservation_status == "pending")
                    .order_by(Reservation.date_created.desc()))
            if row is None:
                return
            if rng.random() < 0.7:
                ops["accept"] += 1
                reservations.update_reservation(router, sid, row.sid, reservation_status="accepted")
            else:
                ops["reject"] += 1
                reservations.update_reservation(router, sid, row.sid, reservation_status="rejected",
                                                worker_activity_sid=rng.choice([None, ws["activities"]["Unavailable"]]))
        elif roll < 0.74:
            with router.read() as session:
                row = pick(session, select(Task.sid).where(
                    Task.workspace_sid == sid, Task.assignment_status.in_(("assigned", "wrapping")))
                    .order_by(Task.date_updated))
            if row is None:
                return
            ops["complete"] += 1
            tasks.update_task(router, sid, row.sid, assignment_status="completed", reason="done")
        elif roll < 0.82:
            with router.read() as session:
                row = pick(session, select(Task.sid).where(
                    Task.workspace_sid == sid, Task.assignment_status.in_(("pending", "reserved")))
                    .order_by(Task.date_created.desc()))
            if row is None:
                return
            if rng.random() < 0.5:
                ops["cancel"] += 1
                tasks.update_task(router, sid, row.sid, assignment_status="canceled", reason="caller hung up")
            else:
                ops["reroute"] += 1
                tasks.update_task(router, sid, row.sid,
                                  attributes=json.dumps({"language": rng.choice(["en", "es"]), "vip": True}))
        elif roll < 0.94:
            ops["sweep"] += 1
            router.run_due_timers()
        else:
            ops["deliver"] += 1
            router.deliver_outbox(20)

    def thread_main(index: int) -> None:
        rng = random.Random(seed * 100 + index)
        while time.monotonic() < stop_at:
            try:
                one(rng)
            except RoutingError as err:  # lost a race (reservation no longer pending, task finished): expected
                refused[err.code] += 1
            except Exception:
                failures.append(traceback.format_exc())

    threads = [threading.Thread(target=thread_main, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    router.dispose()
    with open(result_path, "w") as out:
        json.dump({"fired": fired, "delivered": delivered, "ops": ops, "refused": refused, "failures": failures}, out)


# -- the test -------------------------------------------------------------------------------------

@pytest.fixture
def postgres_url():
    url = _postgres_database()
    _build_schema(url)
    yield url
    _drop_postgres_database(url)


def _workspace(router, *, multi_task: bool) -> dict:
    center = Center(router, router.clock, multi_task_enabled=multi_task)
    everyone = center.queue("Everyone", "1==1")
    spanish = center.queue("Spanish", "languages HAS 'es'", max_reserved_workers=2)
    workflow = center.workflow(
        filters=[{"filter_friendly_name": "vip", "expression": "vip == true",
                  "targets": [{"queue": spanish, "timeout": 2}, {"queue": everyone, "timeout": 4}]}],
        default=everyone, task_reservation_timeout=1, assignment_callback_url=ASSIGNMENT_URL)
    worker_sids = [center.worker(f"agent-{i}", {"languages": ["en", "es"] if i % 2 else ["en"]})
                   for i in range(WORKERS_PER_WORKSPACE)]
    channels = ["voice"]
    if multi_task:
        channels = ["voice", "chat"]
        for sid in worker_sids:
            workers.update_worker_channel(router, center.ws, sid, "chat", capacity=3)
    return {"sid": center.ws, "workflow": workflow, "workers": worker_sids, "activities": center.activities,
            "channels": channels, "multi_task": multi_task}


def _replay(events: list[Event], capacities: dict, multi_task: bool) -> list[str]:
    """Walk the event log in commit order; report any moment of double acceptance or overrun."""
    problems = []
    holding: Counter = Counter()
    holding_worker: Counter = Counter()
    accepted: Counter = Counter()
    ended = ("reservation.rejected", "reservation.timeout", "reservation.canceled", "reservation.rescinded",
             "reservation.completed")
    for row in events:
        data = json.loads(row.event_data)
        if not row.event_type.startswith("reservation."):
            continue
        key = (data["worker_sid"], data["task_channel_sid"])
        if row.event_type == "reservation.created":
            holding[key] += 1
            holding_worker[data["worker_sid"]] += 1
            if holding[key] > capacities[key]:
                problems.append(f"event {row.sid}: worker {key[0]} holds {holding[key]} on channel {key[1]} "
                                f"(capacity {capacities[key]})")
            if not multi_task and holding_worker[data["worker_sid"]] > 1:
                problems.append(f"event {row.sid}: worker {key[0]} holds two reservations in a single-tasking workspace")
        elif row.event_type in ended:
            holding[key] -= 1
            holding_worker[data["worker_sid"]] -= 1
        elif row.event_type == "reservation.accepted":
            accepted[row.task_sid] += 1
            if accepted[row.task_sid] > 1:
                problems.append(f"event {row.sid}: task {row.task_sid} accepted a second time")
    return problems


def test_four_processes_of_four_threads_keep_every_invariant(postgres_url, tmp_path):
    router = Router(postgres_url, clock=SystemClock())
    try:
        layout = [_workspace(router, multi_task=False), _workspace(router, multi_task=True)]
        context = multiprocessing.get_context("spawn")
        paths = [tmp_path / f"process-{n}.json" for n in range(PROCESSES)]
        processes = [context.Process(target=_hammer, args=(postgres_url, layout, n + 1, RUN_SECONDS, str(path)))
                     for n, path in enumerate(paths)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(120)
            assert process.exitcode == 0, f"load process {process.pid} ended with {process.exitcode}"
        results = [json.loads(path.read_text()) for path in paths]

        failures = [failure for result in results for failure in result["failures"]]
        assert failures == [], f"{len(failures)} unexpected errors, first:\n{failures[0]}"
        ops = sum((Counter(result["ops"]) for result in results), Counter())
        print(f"\noperations: {dict(ops)}; refused (lost races): "
              f"{dict(sum((Counter(r['refused']) for r in results), Counter()))}")
        for kind in ("create", "activity", "accept", "reject", "complete", "cancel", "sweep"):
            assert ops[kind] > 0, f"the load never did {kind}"

        # No timer fired twice, although every process swept.
        fired = Counter(tuple(item) for result in results for item in result["fired"])
        assert fired, "no timer came due during the run"
        assert [item for item, count in fired.items() if count > 1] == []
        sweepers = [n for n, result in enumerate(results) if result["fired"]]
        assert len(sweepers) >= 2, "timers were fired by a single process only"
        print(f"timers fired: {dict(Counter(item[0] for item in fired))} by processes {sweepers}")

        # No assignment callback delivered twice, although every process delivered.
        delivered = Counter(sid for result in results for sid in result["delivered"])
        assert [sid for sid, count in delivered.items() if count > 1] == []

        # The event log, replayed in commit order (ids are taken under the workspace lock).
        with router.read() as session:
            for ws in layout:
                events = list(session.scalars(select(Event).where(Event.workspace_sid == ws["sid"]).order_by(Event.id)))
                capacities = {(channel.worker_sid, channel.task_channel_sid): channel.capacity
                              for channel in session.scalars(select(WorkerChannel)
                                                             .where(WorkerChannel.workspace_sid == ws["sid"]))}
                assert _replay(events, capacities, ws["multi_task"]) == []
                per_subject = Counter((row.event_type, row.resource_sid) for row in events)
                for once in ("reservation.timeout", "task.canceled", "task.completed", "reservation.accepted"):
                    assert [sid for (kind, sid), n in per_subject.items() if kind == once and n > 1] == [], once
            assert session.scalar(select(Worker.sid).where(Worker.active_reservations < 0)) is None
            assert session.scalar(select(OutboxMessage.id).where(OutboxMessage.attempts > 1,
                                                                 OutboxMessage.kind == "assignment")) is None

        assert check_invariants(router) == []
    finally:
        router.dispose()


def test_replay_reports_a_double_reservation():
    """The replay above can fail: two open reservations of one worker in a single-tasking workspace."""

    class Row:
        def __init__(self, sid, event_type, task_sid, worker_sid):
            self.sid, self.event_type, self.task_sid = sid, event_type, task_sid
            self.event_data = json.dumps({"worker_sid": worker_sid, "task_channel_sid": "TC1"})

    rows = [Row("EV1", "reservation.created", "WT1", "WK1"), Row("EV2", "reservation.created", "WT2", "WK1")]
    problems = _replay(rows, defaultdict(lambda: 1), multi_task=False)
    assert len(problems) == 2 and "WK1" in problems[0]
