"""Scale benchmark: the engine at TaskRouter's limits, and several processes on PostgreSQL.

    .venv/bin/python bench/scale.py [--sizes 1000x1000,15000x500000] [--samples N] [--backend sqlite|postgresql]
                                    [--processes 1,4] [--workspaces N] [--seconds S] [--postgres-url URL]
                                    [--full-check] [--skip-sizes] [--skip-processes]

1. For each size (workers x waiting tasks), one workspace: 20 task queues (10 skills for an `open`
   team of available workers with nothing waiting, 10 for a `backlog` team of offline workers whose
   queues hold every waiting task), a workflow of 20 filters. Configuration goes through the engine;
   workers, their channels and the waiting tasks (with their events and TTL timers) are bulk
   inserted, and queue membership is computed by the engine's own `refresh_queue_members`. Measured,
   one operation at a time through the engine's public functions:
   (a) task creation while open workers are free (the task is reserved in that transaction; it is then
       accepted and completed, untimed, so the worker is free again);
   (b) a backlog worker becoming available, reserving the best of the waiting tasks in their queues
       (then accept, complete and offline again, untimed).
   ops/s is samples / time spent in the operation. The small workspace is checked with
   `check_invariants` in full; the large one with `--full-check` (minutes), otherwise a sample: the
   invariant check of a 1/50-scale workspace built by the same bulk code.
2. Aggregate throughput on PostgreSQL of 1 versus 4 processes over several workspaces: each process
   has its own Router and runs full lifecycles (create -> accept -> complete) round-robin over its
   share of the workspaces for `--seconds`; then every workspace's invariants are checked.

Prints a table and writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from databases import fresh_database  # noqa: E402
from sqlalchemy import create_engine, insert, select, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from bench.engine import machine, summary_ms  # noqa: E402
from callcenter.routing import Router, queues, reservations, tasks, workers, workflows, workspaces  # noqa: E402
from callcenter.routing.invariants import check_invariants  # noqa: E402
from callcenter.routing.models import (  # noqa: E402
    Activity,
    Event,
    Task,
    TaskChannel,
    Timer,
    Worker,
    WorkerChannel,
)
from callcenter.routing.sids import new_sid  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ACCOUNT = "AC" + "5" * 32
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SKILLS = ("sales", "support", "billing", "tech", "retention", "returns", "claims", "onboarding", "vip", "fraud")
TEAMS = ("open", "backlog")
TARGET_LARGE_RATIO = 2.0
TARGET_LARGE_AVAILABLE_P99_MS = 10.0
TARGET_PROCESS_SPEEDUP = 1.5
CHUNK = 5000


# -- one workspace at a given size -----------------------------------------------------------------

class ScaleWorkspace:
    """A workspace of `worker_count` workers and `task_count` waiting tasks, populated in bulk."""

    def __init__(self, router: Router, worker_count: int, task_count: int, rng: random.Random,
                 name: str = "Scale") -> None:
        self.router, self.rng = router, rng
        self.offered: dict[str, tuple[str, str]] = {}  # task sid -> (reservation sid, worker sid)
        router.listeners.append(self._hear)
        self.ws = workspaces.create_workspace(router, account_sid=ACCOUNT, friendly_name=name).sid
        with router.read() as session:
            names = {a.friendly_name: a.sid for a in session.scalars(select(Activity)
                                                                      .where(Activity.workspace_sid == self.ws))}
            self.channels = {c.unique_name: c.sid for c in session.scalars(
                select(TaskChannel).where(TaskChannel.workspace_sid == self.ws))}
        self.available, self.offline = names["Available"], names["Offline"]
        self.queues = {
            (team, skill): queues.create_task_queue(
                router, self.ws, friendly_name=f"{team}-{skill}",
                target_workers=f"team == '{team}' AND skills HAS '{skill}'").sid
            for team in TEAMS for skill in SKILLS
        }
        filters = [{"filter_friendly_name": f"{team} {skill}",
                    "expression": f"lane == '{team}' AND skill == '{skill}'",
                    "targets": [{"queue": self.queues[(team, skill)]}]}
                   for team in TEAMS for skill in SKILLS]
        self.filter_of = {(team, skill): index for index, (team, skill)
                          in enumerate((t, s) for t in TEAMS for s in SKILLS)}
        self.workflow = workflows.create_workflow(
            router, self.ws, friendly_name="Scale routing",
            configuration=json.dumps({"task_routing": {"filters": filters}}),
            assignment_callback_url="https://example.invalid/assignment", task_reservation_timeout=120).sid
        self.workers: dict[str, list[str]] = {team: [] for team in TEAMS}
        self._insert_workers(worker_count)
        self._insert_waiting_tasks(task_count)

    def _hear(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            if event["event_type"] == "reservation.created":
                self.offered[event["task_sid"]] = (event["reservation_sid"], event["worker_sid"])

    def _insert(self, connection, table, rows: list[dict[str, Any]]) -> None:
        for start in range(0, len(rows), CHUNK):
            connection.execute(insert(table), rows[start:start + CHUNK])

    def _insert_workers(self, count: int) -> None:
        rng, now = self.rng, self.router.clock.now()
        worker_rows, channel_rows, event_rows = [], [], []
        for number in range(count):
            team = TEAMS[number % 2]
            sid = new_sid("WK")
            self.workers[team].append(sid)
            attributes = json.dumps({"team": team, "skills": rng.sample(SKILLS, 2), "level": rng.randint(1, 5),
                                     "contact_uri": f"client:agent{number}"})
            activity = self.available if team == "open" else self.offline
            # Available workers became available or finished a task in the last 8 hours; offline ones
            # left before that, so they are the longest idle of all (as in a real shift pattern).
            idle = now - timedelta(seconds=rng.randrange(8 * 3600) + (0 if team == "open" else 8 * 3600))
            worker_rows.append({
                "sid": sid, "workspace_sid": self.ws, "friendly_name": f"agent{number:05d}",
                "name_key": f"agent{number:05d}", "attributes": attributes, "activity_sid": activity,
                "available": team == "open", "active_reservations": 0, "version": 1,
                "date_status_changed": idle, "date_created": idle, "date_updated": idle,
            })
            for channel_sid in self.channels.values():
                channel_rows.append({
                    "sid": new_sid("WC"), "workspace_sid": self.ws, "worker_sid": sid,
                    "task_channel_sid": channel_sid, "capacity": 1, "available": True, "reserved_tasks": 0,
                    "assigned_tasks": 0, "idle_since": idle, "worker_available": team == "open",
                    "date_created": idle, "date_updated": idle,
                })
            event_rows.append(self._event("worker.created", idle, "worker", sid, {"worker_sid": sid},
                                          worker_sid=sid, activity_sid=activity))
        with self.router.writer.begin() as connection:
            self._insert(connection, Worker.__table__, worker_rows)
            self._insert(connection, WorkerChannel.__table__, channel_rows)
            self._insert(connection, Event.__table__, event_rows)
        # Membership through the engine's own code: the same rows a worker created by the API gets.
        for queue_sid in self.queues.values():
            with self.router.transaction(self.ws) as tx:
                queues.refresh_queue_members(tx, tx.queue(queue_sid))

    def _insert_waiting_tasks(self, count: int) -> None:
        rng, now = self.rng, self.router.clock.now()
        voice = self.channels["voice"]
        task_rows, event_rows, timer_rows = [], [], []
        for _ in range(count):
            skill = rng.choice(SKILLS)
            sid = new_sid("WT")
            created = now - timedelta(seconds=rng.randrange(1, 6 * 3600))
            queue_sid = self.queues[("backlog", skill)]
            attributes = json.dumps({"lane": "backlog", "skill": skill, "call_sid": "CA" + uuid.uuid4().hex})
            task_rows.append({
                "sid": sid, "workspace_sid": self.ws, "workflow_sid": self.workflow, "task_channel_sid": voice,
                "attributes": attributes, "assignment_status": "pending", "priority": rng.choice((0, 0, 0, 1, 5)),
                "timeout": 86_400, "reason": None, "task_queue_sid": queue_sid, "task_queue_entered_date": created,
                "virtual_start_time": created, "filter_index": self.filter_of[("backlog", skill)], "target_index": 0,
                "pending_reservations": 0, "assignment_count": 0, "routing_target": None, "ignore_capacity": None,
                "version": 2, "date_created": created, "date_updated": created, "date_assigned": None,
                "date_finished": None,
            })
            fields = {"task_sid": sid, "task_attributes": attributes, "task_channel_sid": voice,
                      "workflow_sid": self.workflow}
            event_rows.append(self._event("task.created", created, "task", sid, fields, task_sid=sid,
                                          workflow_sid=self.workflow, task_channel_sid=voice))
            event_rows.append(self._event("task-queue.entered", created, "task", sid,
                                          {**fields, "task_queue_sid": queue_sid}, task_sid=sid,
                                          workflow_sid=self.workflow, task_channel_sid=voice,
                                          task_queue_sid=queue_sid))
            timer_rows.append({"workspace_sid": self.ws, "kind": "task_ttl", "subject_sid": sid,
                               "due_at": created + timedelta(seconds=86_400)})
        with self.router.writer.begin() as connection:
            self._insert(connection, Task.__table__, task_rows)
            self._insert(connection, Event.__table__, event_rows)
            self._insert(connection, Timer.__table__, timer_rows)

    def _event(self, event_type: str, moment, resource_type: str, resource_sid: str, fields: dict[str, str],
               **columns: str) -> dict[str, Any]:
        row = {column.name: None for column in Event.__table__.c if column.name != "id"}
        row.update({
            "sid": new_sid("EV"), "workspace_sid": self.ws, "account_sid": ACCOUNT, "event_type": event_type,
            "event_date": moment, "resource_type": resource_type, "resource_sid": resource_sid,
            "actor_type": "workspace", "actor_sid": self.ws, "description": f"{event_type} (bulk)",
            "event_data": json.dumps({**fields, "workspace_sid": self.ws}, separators=(",", ":")),
        })
        row.update(columns)
        return row

    # -- the two measured operations ------------------------------------------------------------
    def create_open_task(self) -> tuple[float, str]:
        """Create a task for the open team (timed), then accept and complete it (untimed)."""
        router, ws = self.router, self.ws
        attributes = json.dumps({"lane": "open", "skill": self.rng.choice(SKILLS),
                                 "call_sid": "CA" + uuid.uuid4().hex})
        t0 = time.perf_counter()
        task = tasks.create_task(router, ws, attributes=attributes, workflow_sid=self.workflow, task_channel="voice")
        elapsed = time.perf_counter() - t0
        reservation_sid, _worker = self.offered.pop(task.sid)  # KeyError = no worker was reserved
        reservations.update_reservation(router, ws, reservation_sid, reservation_status="accepted")
        tasks.update_task(router, ws, task.sid, assignment_status="completed", reason="done")
        return elapsed, task.sid

    def backlog_worker_available(self, worker_sid: str) -> float:
        """A backlog worker becomes available (timed) and is offered a waiting task; then it is done."""
        router, ws = self.router, self.ws
        t0 = time.perf_counter()
        workers.update_worker(router, ws, worker_sid, activity_sid=self.available)
        elapsed = time.perf_counter() - t0
        offers = [(task_sid, offer) for task_sid, offer in self.offered.items() if offer[1] == worker_sid]
        if len(offers) != 1:
            raise RuntimeError(f"worker {worker_sid} got {len(offers)} offers, expected 1")
        task_sid, (reservation_sid, _worker) = offers[0]
        del self.offered[task_sid]
        reservations.update_reservation(router, ws, reservation_sid, reservation_status="accepted")
        tasks.update_task(router, ws, task_sid, assignment_status="completed", reason="done")
        # Freed, they were offered the next waiting task at once: going offline turns it down.
        workers.update_worker(router, ws, worker_sid, activity_sid=self.offline, reject_pending_reservations=True)
        for task_sid, offer in list(self.offered.items()):
            if offer[1] == worker_sid:
                del self.offered[task_sid]
        return elapsed


def measure_size(router: Router, worker_count: int, task_count: int, samples: int, rng: random.Random,
                 full_check: bool) -> dict[str, Any]:
    started = time.perf_counter()
    print(f"  populating {worker_count:,} workers and {task_count:,} waiting tasks ...", flush=True)
    space = ScaleWorkspace(router, worker_count, task_count, rng, name=f"Scale {worker_count}x{task_count}")
    populate_seconds = time.perf_counter() - started
    warmup = min(50, samples // 5)
    print(f"  measuring {samples} task creations and {samples} workers becoming available ...", flush=True)
    for _ in range(warmup):
        space.create_open_task()
    created = [space.create_open_task()[0] for _ in range(samples)]
    backlog = space.workers["backlog"]
    for worker_sid in backlog[:warmup]:
        space.backlog_worker_available(worker_sid)
    available = [space.backlog_worker_available(backlog[(warmup + n) % len(backlog)]) for n in range(samples)]
    result: dict[str, Any] = {
        "workers": worker_count, "waiting_tasks": task_count, "populate_seconds": round(populate_seconds, 1),
        "task_creation": {**summary_ms(created), "ops_per_second": round(len(created) / sum(created), 1)},
        "worker_available": {**summary_ms(available), "ops_per_second": round(len(available) / sum(available), 1)},
    }
    if task_count <= 20_000 or full_check:
        print("  checking invariants on the whole workspace ...", flush=True)
        t0 = time.perf_counter()
        problems = check_invariants(router, space.ws)
        result["invariants"] = {"scope": "whole workspace", "seconds": round(time.perf_counter() - t0, 1),
                                "violations": len(problems), "first": problems[:5]}
    else:
        print("  checking invariants on a 1/50-scale workspace built by the same bulk code ...", flush=True)
        sample = ScaleWorkspace(router, max(100, worker_count // 50), task_count // 50, rng, name="Scale sample")
        for _ in range(20):
            sample.create_open_task()
        for worker_sid in sample.workers["backlog"][:20]:
            sample.backlog_worker_available(worker_sid)
        problems = check_invariants(router, sample.ws)
        result["invariants"] = {"scope": f"sample workspace ({max(100, worker_count // 50)} workers, "
                                         f"{task_count // 50} tasks)", "violations": len(problems),
                                "first": problems[:5]}
    return result


# -- databases -------------------------------------------------------------------------------------

def postgres_version(url: str) -> str:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SHOW server_version")).scalar_one()
    except Exception as err:
        return f"unavailable ({type(err).__name__})"
    finally:
        engine.dispose()


# -- several processes on PostgreSQL ---------------------------------------------------------------

def _process_lifecycles(url: str, spaces: list[dict[str, Any]], seconds: float, start_at: float,
                        seed: int, out: Any) -> None:
    """One process: its own Router; full lifecycles round-robin over its workspaces until time is up."""
    router = Router(url)
    offered: dict[str, str] = {}

    def hear(events: list[dict[str, Any]]) -> None:
        for event in events:
            if event["event_type"] == "reservation.created":
                offered[event["task_sid"]] = event["reservation_sid"]

    router.listeners.append(hear)
    rng = random.Random(seed)
    count = 0
    try:
        while time.time() < start_at:
            time.sleep(0.005)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            space = spaces[count % len(spaces)]
            attributes = json.dumps({"lane": "open", "skill": rng.choice(SKILLS)})
            task = tasks.create_task(router, space["ws"], attributes=attributes, workflow_sid=space["workflow"])
            reservations.update_reservation(router, space["ws"], offered.pop(task.sid),
                                            reservation_status="accepted")
            tasks.update_task(router, space["ws"], task.sid, assignment_status="completed", reason="done")
            count += 1
        out.put(count)
    finally:
        router.dispose()


def measure_processes(url: str, process_counts: list[int], workspace_count: int, workers_each: int,
                      seconds: float) -> dict[str, Any]:
    router = Router(url)
    try:
        router.create_schema()
        print(f"  {workspace_count} workspaces of {workers_each} workers ...", flush=True)
        rng = random.Random(11)
        spaces = []
        for number in range(workspace_count):
            space = ScaleWorkspace(router, workers_each, 0, rng, name=f"Tenant {number}")
            spaces.append({"ws": space.ws, "workflow": space.workflow})
        runs = {}
        context = multiprocessing.get_context("spawn")
        for processes in process_counts:
            print(f"  {processes} process(es) for {seconds:.0f} s ...", flush=True)
            out = context.Queue()
            start_at = time.time() + 3.0  # every process imported and connected before the clock starts
            children = [context.Process(target=_process_lifecycles,
                                        args=(url, spaces[index::processes], seconds, start_at, index, out))
                        for index in range(processes)]
            load_before = os.getloadavg()[0]
            for child in children:
                child.start()
            counts = [out.get(timeout=seconds + 120) for _ in children]
            for child in children:
                child.join()
            runs[processes] = {"lifecycles": sum(counts), "per_process": counts,
                               "lifecycles_per_second": round(sum(counts) / seconds, 1),
                               "load_average_before": round(load_before, 2)}
        problems = check_invariants(router)
    finally:
        router.dispose()
    first, last = process_counts[0], process_counts[-1]
    speedup = runs[last]["lifecycles_per_second"] / runs[first]["lifecycles_per_second"]
    return {"workspaces": workspace_count, "workers_per_workspace": workers_each, "seconds": seconds,
            "runs": {str(k): v for k, v in runs.items()}, "speedup": round(speedup, 2),
            "invariants": {"violations": len(problems), "first": problems[:5]}}


# -- the report ------------------------------------------------------------------------------------

def print_report(results: dict[str, Any]) -> None:
    m = results["machine"]
    print()
    print(f"  {m['cpu']}, {m['cores_usable']} cores; {m['os']}; {m['python']}; SQLite {m['sqlite']}; "
          f"SQLAlchemy {m['sqlalchemy']}; PostgreSQL {m.get('postgresql', '-')}")
    sizes = results.get("sizes", [])
    if sizes:
        print(f"\n  backend: {results['backend']}")
        print(f"  {'workers x waiting tasks':<26}{'operation':<20}{'ops/s':>8}{'median':>10}{'p99':>10}{'max':>10}"
              f"  invariants")
        for size in sizes:
            for key, label in (("task_creation", "task creation"), ("worker_available", "worker available")):
                s = size[key]
                print(f"  {size['workers']:>6,} x {size['waiting_tasks']:<15,}{label:<20}{s['ops_per_second']:>8.0f}"
                      f"{s['median_ms']:>8.2f}ms{s['p99_ms']:>8.2f}ms{s['max_ms']:>8.2f}ms  "
                      f"{size['invariants']['violations']} violations ({size['invariants']['scope']})")
        t = results["targets"]
        print(f"\n  large/small p99: creation {t['creation_p99_ratio']}, worker available {t['available_p99_ratio']} "
              f"(target <= {TARGET_LARGE_RATIO}); large worker-available p99 {t['large_available_p99_ms']} ms "
              f"(target <= {TARGET_LARGE_AVAILABLE_P99_MS})")
    procs = results.get("processes")
    if procs:
        print(f"\n  PostgreSQL, {procs['workspaces']} workspaces x {procs['workers_per_workspace']} workers, "
              f"{procs['seconds']:.0f} s each:")
        for count, run in procs["runs"].items():
            print(f"    {count} process(es): {run['lifecycles_per_second']:>7.1f} lifecycles/s "
                  f"(per process {run['per_process']})")
        print(f"    speedup {procs['speedup']}x (target >= {TARGET_PROCESS_SPEEDUP}); invariants: "
              f"{procs['invariants']['violations']} violations")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000x1000,15000x500000", help="workers x waiting tasks, comma-separated")
    parser.add_argument("--samples", type=int, default=500, help="measured operations of each kind per size")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite", help="for the sizes")
    parser.add_argument("--processes", default="1,4", help="process counts to compare on PostgreSQL")
    parser.add_argument("--workspaces", type=int, default=8)
    parser.add_argument("--workers-per-workspace", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each process-count run")
    parser.add_argument("--postgres-url", default=os.environ.get("CALLCENTER_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    parser.add_argument("--full-check", action="store_true", help="check the large workspace's invariants in full")
    parser.add_argument("--skip-sizes", action="store_true")
    parser.add_argument("--skip-processes", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    results: dict[str, Any] = {"backend": args.backend}
    with tempfile.TemporaryDirectory(prefix="callcenter-scale-") as scratch_dir:
        scratch = Path(scratch_dir)
        results["machine"] = {**machine(scratch), "postgresql": postgres_version(args.postgres_url)}
        if not args.skip_sizes:
            results["sizes"] = []
            for size in args.sizes.split(","):
                worker_count, task_count = (int(part) for part in size.lower().split("x"))
                print(f"size {worker_count:,} workers x {task_count:,} tasks ({args.backend}):", flush=True)
                with fresh_database(args.backend, scratch, args.postgres_url, "scale") as url:
                    router = Router(url)
                    try:
                        router.create_schema()
                        results["sizes"].append(measure_size(router, worker_count, task_count, args.samples,
                                                             random.Random(args.seed), args.full_check))
                    finally:
                        router.dispose()
            small, large = results["sizes"][0], results["sizes"][-1]
            creation = large["task_creation"]["p99_ms"] / small["task_creation"]["p99_ms"]
            available = large["worker_available"]["p99_ms"] / small["worker_available"]["p99_ms"]
            results["targets"] = {
                "creation_p99_ratio": round(creation, 2), "available_p99_ratio": round(available, 2),
                "creation_ops_ratio": round(small["task_creation"]["ops_per_second"]
                                            / large["task_creation"]["ops_per_second"], 2),
                "available_ops_ratio": round(small["worker_available"]["ops_per_second"]
                                             / large["worker_available"]["ops_per_second"], 2),
                "large_available_p99_ms": large["worker_available"]["p99_ms"],
                "large_within_2x": max(creation, available) <= TARGET_LARGE_RATIO,
                "large_available_p99_met": large["worker_available"]["p99_ms"] <= TARGET_LARGE_AVAILABLE_P99_MS,
            }
        if not args.skip_processes:
            print("several processes on PostgreSQL:", flush=True)
            with fresh_database("postgresql", scratch, args.postgres_url, "scale") as url:
                results["processes"] = measure_processes(
                    url, [int(n) for n in args.processes.split(",")], args.workspaces,
                    args.workers_per_workspace, args.seconds)
    results["git"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True).stdout.strip()
    results["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print_report(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"  written to {RESULTS / 'scale.json'}")
    violations = sum(s["invariants"]["violations"] for s in results.get("sizes", []))
    violations += results.get("processes", {}).get("invariants", {}).get("violations", 0)
    return 0 if not violations else 1


if __name__ == "__main__":
    sys.exit(main())
