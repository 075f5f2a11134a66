"""API benchmark: task creations per second through the official twilio SDK, against the app under gunicorn.

    .venv/bin/python bench/api.py [--creations N] [--threads N] [--servers sync:2,sync:4,gthread:2x4,gthread:4x4]
                                  [--backends sqlite,postgresql] [--postgres-url URL] [--sweeper]

For each backend and each gunicorn setting, on a fresh database:

1. `flask --app app init-db` builds the schema (as a deploy would), then `gunicorn 'app:create_app()'`
   starts on a free local port with AUTO_MIGRATE=false and RUN_SWEEPER=false (no timers fire and no
   callbacks are delivered while measuring; `--sweeper` runs one sweeper per gunicorn worker instead);
2. through the SDK: a workspace, 5 task queues by skill, a workflow of 3 filters plus a default
   filter, and 50 available workers with 2 skills each;
3. `--threads` client threads, each with its own SDK `Client`, create `--creations` tasks in all:
   the first ones are reserved at once while workers are free, the rest wait in their queues;
4. the tasks are counted by assignment status and `flask routing check` verifies the invariants.

SQLite is a file in a temporary directory; PostgreSQL gets a fresh database `cc_bench_<random>` on the
server of `--postgres-url`, dropped afterwards. Prints a table and writes bench/results/api.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import sqlalchemy
from databases import fresh_database  # bench/databases.py
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = secrets.token_hex(16)
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SKILLS = ("sales", "support", "billing", "tech", "retention")  # one queue each
WORKERS = 50
TARGET_PER_SECOND = 300
EXTRA: list[str] = [*os.environ.get("BENCH_GUNICORN_EXTRA", "").split()]


# -- the server ------------------------------------------------------------------------------------

@dataclass
class Setting:
    """A gunicorn configuration: `sync:4` is 4 sync workers, `gthread:2x4` is 2 workers of 4 threads."""

    worker_class: str
    workers: int
    threads: int = 1

    @classmethod
    def parse(cls, text_: str) -> Setting:
        kind, _, count = text_.partition(":")
        workers, _, threads = count.partition("x")
        if kind not in ("sync", "gthread") or not workers.isdigit() or (threads and not threads.isdigit()):
            raise argparse.ArgumentTypeError(f"{text_!r}: expected sync:N or gthread:NxT")
        return cls(kind, int(workers), int(threads or (4 if kind == "gthread" else 1)))

    def __str__(self) -> str:
        return f"{self.worker_class}:{self.workers}" + (f"x{self.threads}" if self.worker_class == "gthread" else "")

    def arguments(self) -> list[str]:
        args = ["-w", str(self.workers), "-k", self.worker_class]
        return [*args, "--threads", str(self.threads)] if self.worker_class == "gthread" else args


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_environment(database_url: str, sweeper: bool) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TWILIO_", "HTTP_PROXY", "http_proxy"))}
    env.update(DATABASE_URL=database_url, TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
               AUTO_MIGRATE="false", RUN_SWEEPER="true" if sweeper else "false", PYTHONUNBUFFERED="1")
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def flask_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@contextmanager
def gunicorn(setting: Setting, env: dict[str, str], log_path: Path):
    """The app under gunicorn on a free port; yields its base URL and stops it (SIGTERM, then SIGKILL)."""
    port = free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", *setting.arguments(), "-b", f"127.0.0.1:{port}",
             "--log-level", "warning", "--graceful-timeout", "5", *EXTRA, "app:create_app()"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{base_url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or no worker booted yet
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer /health in 60 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield base_url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(parent_pid: int | None = None, postgres_database: str | None = None) -> float:
    """User + system CPU seconds, from /proc, of a process's live children (gunicorn's workers) or of
    the PostgreSQL backends connected to one database (their title names it)."""
    total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if parent_pid is not None and int(fields[1]) != parent_pid:  # fields[1] is the parent pid
                continue
            if postgres_database is not None:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if not title.startswith("postgres:") or f" {postgres_database} " not in title:
                    continue
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


# -- the databases ---------------------------------------------------------------------------------

def build_schema(database_url: str, env: dict[str, str], how: str) -> None:
    """`init-db` runs the Alembic migrations, as a deploy would; `models` builds the tables from the
    models and stamps the Alembic head, as the test suite does (for when a migration lags the models)."""
    if how == "init-db":
        init = flask_command(env, "init-db")
        if init.returncode != 0:
            raise RuntimeError(f"flask init-db failed:\n{init.stdout}{init.stderr[-3000:]}")
        return
    from alembic import command

    from callcenter.database import alembic_config
    from callcenter.routing.models import Base

    engine = create_engine(database_url, poolclass=NullPool)
    Base.metadata.create_all(engine)
    engine.dispose()
    command.stamp(alembic_config(database_url), "head")


# -- the contact center, through the SDK -----------------------------------------------------------

def sdk(base_url: str) -> Client:
    client = Client(ACCOUNT_SID, AUTH_TOKEN, environment={"_": "_"})
    client.taskrouter.base_url = base_url
    return client


def build_center(base_url: str, rng: random.Random) -> tuple[str, str]:
    """A workspace of 50 available workers, 5 queues and a 3-filter workflow; returns (workspace, workflow)."""
    v1 = sdk(base_url).taskrouter.v1
    ws_sid = v1.workspaces.create(friendly_name="API bench").sid
    ws = v1.workspaces(ws_sid)
    available = next(a.sid for a in ws.activities.list() if a.friendly_name == "Available")
    queues = {skill: ws.task_queues.create(friendly_name=skill, target_workers=f"skills HAS '{skill}'").sid
              for skill in SKILLS}
    filters = [
        {"filter_friendly_name": "VIP", "expression": "vip == true",
         "targets": [{"queue": queues["retention"], "timeout": 30, "expression": "worker.level >= 3"},
                     {"queue": queues["support"], "timeout": 300}]},
        {"filter_friendly_name": "Sales", "expression": "type == 'sales'",
         "targets": [{"queue": queues["sales"], "timeout": 60}, {"queue": queues["retention"]}]},
        {"filter_friendly_name": "Billing and tech", "expression": "type IN ['billing', 'tech']",
         "targets": [{"queue": queues["billing"], "timeout": 120}, {"queue": queues["tech"]}]},
    ]
    configuration = {"task_routing": {"filters": filters, "default_filter": {"queue": queues["support"]}}}
    workflow = ws.workflows.create(friendly_name="Bench routing", configuration=json.dumps(configuration),
                                   task_reservation_timeout=120,
                                   assignment_callback_url="https://example.invalid/assignment").sid
    for number in range(WORKERS):
        attributes = {"skills": rng.sample(SKILLS, 2), "languages": ["en"], "level": rng.randint(1, 5),
                      "contact_uri": f"client:agent{number}"}
        ws.workers.create(friendly_name=f"agent{number:02d}", activity_sid=available,
                          attributes=json.dumps(attributes))
    return ws_sid, workflow


def task_attributes(rng: random.Random) -> str:
    kind = rng.choices(("sales", "support", "billing", "tech", "other"), (30, 30, 15, 15, 10))[0]
    return json.dumps({"type": kind, "vip": rng.random() < 0.1, "call_sid": "CA" + uuid.uuid4().hex,
                       "from": f"+1555{rng.randrange(10**7):07d}"})


# -- the measurement -------------------------------------------------------------------------------

def create_tasks(base_url: str, ws_sid: str, workflow: str, creations: int, threads: int,
                 seed: int) -> dict[str, Any]:
    """`creations` task creations shared by `threads` threads, each with its own SDK client."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    remaining = iter(range(creations))
    ready = threading.Barrier(threads + 1)

    def client_thread(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        tasks = sdk(base_url).taskrouter.v1.workspaces(ws_sid).tasks
        tasks.list(limit=1)  # open the connection and warm this worker up before the clock starts
        mine, failed = [], {}
        ready.wait()
        while True:
            with lock:
                if next(remaining, None) is None:
                    break
            attributes = task_attributes(rng)
            started = time.perf_counter()
            try:
                tasks.create(workflow_sid=workflow, attributes=attributes)
            except TwilioRestException as err:
                key = f"{err.status} {err.code}: {err.msg[:160]}"
                failed[key] = failed.get(key, 0) + 1
            except Exception as err:  # a broken connection is an answer worth counting too
                key = f"{type(err).__name__}: {str(err)[:160]}"
                failed[key] = failed.get(key, 0) + 1
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            for key, count in failed.items():
                errors[key] = errors.get(key, 0) + count

    pool = [threading.Thread(target=client_thread, args=(n,), name=f"client-{n}") for n in range(threads)]
    for thread in pool:
        thread.start()
    ready.wait()
    started, cpu_started = time.perf_counter(), time.process_time()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "client_cpu_seconds": time.process_time() - cpu_started,
            "latencies": latencies, "errors": errors}


def count_by_status(base_url: str, ws_sid: str) -> dict[str, int]:
    tasks = sdk(base_url).taskrouter.v1.workspaces(ws_sid).tasks
    return {status: sum(1 for _ in tasks.stream(assignment_status=[status], page_size=1000))
            for status in ("pending", "reserved", "assigned", "canceled", "completed")}


def summary_ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(share: float) -> float:  # nearest rank
        return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))] * 1000

    return {"samples": len(ordered), "median_ms": round(statistics.median(ordered) * 1000, 2),
            "p90_ms": round(at(0.90), 2), "p99_ms": round(at(0.99), 2), "max_ms": round(ordered[-1] * 1000, 2)}


def server_log_problems(log_text: str) -> list[str]:
    """Lines of the server log that show a failure (tracebacks, locked database, worker deaths)."""
    signs = ("Traceback", "Error", "locked", "WORKER TIMEOUT", "Worker failed", "exception")
    return [line.strip() for line in log_text.splitlines() if any(sign in line for sign in signs)][:20]


def measure(backend: str, setting: Setting, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    with fresh_database(backend, scratch, args.postgres_url, "api") as database_url:
        env = server_environment(database_url, args.sweeper)
        build_schema(database_url, env, args.schema)
        log_path = scratch / f"gunicorn-{backend}-{setting}.log"
        with gunicorn(setting, env, log_path) as (base_url, pid):
            try:
                ws_sid, workflow = build_center(base_url, random.Random(args.seed))
            except TwilioRestException as err:
                raise RuntimeError(f"{err}; server log: {server_log_problems(log_path.read_text())[-3:]}") from err
            database_name = database_url.rpartition("/")[2] if backend == "postgresql" else None
            load_before, server_cpu_before = os.getloadavg(), cpu_seconds(parent_pid=pid)
            database_cpu_before = cpu_seconds(postgres_database=database_name) if database_name else 0.0
            run = create_tasks(base_url, ws_sid, workflow, args.creations, args.threads, args.seed)
            load_after, server_cpu = os.getloadavg(), cpu_seconds(parent_pid=pid) - server_cpu_before
            database_cpu = cpu_seconds(postgres_database=database_name) - database_cpu_before if database_name else 0.0
            uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
            statuses = count_by_status(base_url, ws_sid)
        check = flask_command(env, "routing", "check", "--workspace", ws_sid)
        log_text = log_path.read_text()
    ok = args.creations - sum(run["errors"].values())
    return {
        "backend": backend, "gunicorn": str(setting), "threads": args.threads, "creations": args.creations,
        "succeeded": ok, "errors": run["errors"], "seconds": round(run["seconds"], 3),
        "creations_per_second": round(ok / run["seconds"], 1),
        "latency": summary_ms(run["latencies"]),
        "server_cpu_seconds": round(server_cpu, 2), "client_cpu_seconds": round(run["client_cpu_seconds"], 2),
        "postgres_backend_cpu_seconds": round(database_cpu, 2) if database_name else None,
        # Per creation: what one creation costs this machine's cores, whatever else shares them.
        "cpu_ms_per_creation": {"gunicorn_workers": round(server_cpu * 1000 / ok, 2),
                                "postgres_backends": round(database_cpu * 1000 / ok, 2) if database_name else None,
                                "sdk_clients": round(run["client_cpu_seconds"] * 1000 / ok, 2)},
        # If these cores ran nothing else: cores / CPU per creation (server, database and clients).
        "cpu_bound_ceiling_per_second": round(
            len(os.sched_getaffinity(0)) * ok / (server_cpu + database_cpu + run["client_cpu_seconds"]), 1),
        "tasks_by_status": statuses,
        "invariants": check.stdout.strip().splitlines()[-1] if check.stdout.strip() else check.stderr[-500:],
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)], "uptime_after": uptime,
        "server_log_problems": server_log_problems(log_text),
    }


# -- the machine and the report --------------------------------------------------------------------

def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import gunicorn as gunicorn_package
    import twilio

    return {"cpu": cpu, "cores": os.cpu_count(),
            "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "os": f"{platform.system()} {platform.release()}",
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "sqlalchemy": sqlalchemy.__version__, "gunicorn": gunicorn_package.__version__,
            "twilio_sdk": twilio.__version__}


def cpu_text(cpu: dict[str, float | None]) -> str:
    database = "-" if cpu["postgres_backends"] is None else f"{cpu['postgres_backends']:.1f}"
    return f"{cpu['gunicorn_workers']:.1f} + {database} + {cpu['sdk_clients']:.1f}"


def print_report(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(f"\n  machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), {m['python']}, {m['os']}")
    print(f"  {results['config']['creations']} task creations per run by {results['config']['threads']} SDK client "
          f"threads (in this process, on the same cores); {results['config']['workspace']}; "
          f"sweeper {'on' if results['config']['sweeper'] else 'off'}\n")
    header = (f"  {'backend':<11}{'gunicorn':<13}{'creations/s':>12}{'median ms':>11}{'p99 ms':>9}{'errors':>8}"
              f"{'CPU ms/creation: app+db+client':>32}{'ceiling/s':>11}  load avg before -> after")
    print(header)
    print("  " + "-" * (len(header) - 2))
    for run in results["runs"]:
        if "failed" in run:
            print(f"  {run['backend']:<11}{run['gunicorn']:<13}FAILED: {run['failed'][:120]}")
            continue
        load = run["load_average_before_after"]
        print(f"  {run['backend']:<11}{run['gunicorn']:<13}{run['creations_per_second']:>12.1f}"
              f"{run['latency']['median_ms']:>11.1f}{run['latency']['p99_ms']:>9.1f}"
              f"{sum(run['errors'].values()):>8}{cpu_text(run['cpu_ms_per_creation']):>32}"
              f"{run['cpu_bound_ceiling_per_second']:>11.0f}  {load[0]} -> {load[1]}")
    print("  ceiling/s: creations per second if this run's CPU per creation had the machine's cores to itself\n")
    for backend, best in results["best"].items():
        met = "met" if best["creations_per_second"] >= TARGET_PER_SECOND else "NOT met"
        print(f"  best on {backend}: {best['creations_per_second']:.1f} creations/s with gunicorn {best['gunicorn']} "
              f"(target >= {TARGET_PER_SECOND}: {met})")
    for run in results["runs"]:
        details = []
        if run.get("errors"):
            details.append(f"errors {run['errors']}")
        if run.get("server_log_problems"):
            details.append(f"server log: {run['server_log_problems'][:5]}")
        if run.get("invariants") and run["invariants"] != "0 violation(s)":
            details.append(f"invariants: {run['invariants']}")
        if details:
            print(f"  {run['backend']} {run['gunicorn']}: " + "; ".join(details))
    runs = [run for run in results["runs"] if "tasks_by_status" in run]
    if runs:
        print(f"  tasks by status after a run (e.g. {runs[0]['backend']} {runs[0]['gunicorn']}): "
              f"{runs[0]['tasks_by_status']}")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--creations", type=int, default=2000, help="task creations per run (default 2000)")
    parser.add_argument("--threads", type=int, default=8, help="concurrent SDK client threads (default 8)")
    parser.add_argument("--servers", default="sync:2,sync:4,gthread:2x4,gthread:4x4",
                        help="gunicorn settings to try, comma-separated (default sync:2,sync:4,gthread:2x4,gthread:4x4)")
    parser.add_argument("--backends", default="sqlite,postgresql", help="default sqlite,postgresql")
    parser.add_argument("--postgres-url", default=os.environ.get("CALLCENTER_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
                        help="a database on the PostgreSQL server to create the bench database on")
    parser.add_argument("--sweeper", action="store_true", help="run the sweeper in each gunicorn worker")
    parser.add_argument("--schema", choices=("init-db", "models"), default="init-db",
                        help="init-db: `flask --app app init-db` (the migrations, default); "
                             "models: create_all + stamp head, as the tests do")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    settings = [Setting.parse(part.strip()) for part in args.servers.split(",") if part.strip()]
    backends = [part.strip() for part in args.backends.split(",") if part.strip()]

    runs = []
    with tempfile.TemporaryDirectory(prefix="callcenter-api-bench-") as scratch:
        for backend in backends:
            for setting in settings:
                print(f"{backend}, gunicorn {setting}: {args.creations} creations by {args.threads} threads ...",
                      flush=True)
                try:
                    run = measure(backend, setting, args, Path(scratch))
                except Exception as err:  # report the others even if one setting cannot run
                    run = {"backend": backend, "gunicorn": str(setting), "failed": f"{type(err).__name__}: {err}"}
                runs.append(run)
                print(f"  -> {run.get('creations_per_second', 'failed')} creations/s, errors {run.get('errors')}; "
                      f"{run.get('uptime_after', run.get('failed', ''))[:300]}", flush=True)
    best = {}
    for run in runs:
        if "failed" not in run and run["creations_per_second"] > best.get(run["backend"], {}).get("creations_per_second", 0):
            best[run["backend"]] = {"gunicorn": run["gunicorn"], "creations_per_second": run["creations_per_second"]}
    results = {
        "machine": machine(),
        "config": {"creations": args.creations, "threads": args.threads, "sweeper": args.sweeper,
                   "workspace": f"{WORKERS} available workers, {len(SKILLS)} queues, 3 filters + default",
                   "schema": {"init-db": "flask --app app init-db (Alembic migrations)",
                              "models": "create_all from the models + alembic stamp head"}[args.schema]
                             + ", then AUTO_MIGRATE=false",
                   "client": "twilio SDK Client per thread, taskrouter.base_url set to the server"},
        "runs": runs, "best": best, "target_creations_per_second": TARGET_PER_SECOND,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print_report(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "api.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"  written to {RESULTS / 'api.json'}")
    failed = any("failed" in run or run["errors"] for run in runs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
