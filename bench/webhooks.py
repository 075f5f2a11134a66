"""Voice webhook benchmark: latency of the incoming-call webhooks at a steady rate, against the app under gunicorn.

    .venv/bin/python bench/webhooks.py [--rate 100] [--seconds 20] [--servers gthread:2x4,sync:4]
                                       [--backends sqlite,postgresql] [--postgres-url URL]

For each backend and gunicorn setting, on a fresh database: `flask init-db`, `flask contact-center load`
(contact-center.toml), then gunicorn with AUTO_MIGRATE=false and RUN_SWEEPER=false. Requests are
signed exactly as Twilio signs them and sent open-loop at `--rate` per second (each on its own
schedule, so a slow answer does not slow the load down: what a caller would wait is measured):

- `/voice/incoming`: a new call is greeted and offered the menu (a read: is there a task already?);
- `/voice/menu` with a key press (`--with-menu`): the call's task is created and routed, and the
  caller enqueued, right after its greeting; the server then takes 2 x `--rate` requests per second.

Prints median, p99 and max per webhook and writes bench/results/webhooks.json.
Target: p99 of `/voice/incoming` <= 30 ms at 100 requests/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from api import (  # noqa: E402  (bench/api.py: the gunicorn and database plumbing)
    AUTH_TOKEN,
    DEFAULT_POSTGRES_URL,
    RESULTS,
    Setting,
    flask_command,
    gunicorn,
    machine,
    server_environment,
)
from databases import fresh_database  # noqa: E402

PUBLIC_BASE_URL = "https://bench.example.com"
TARGET_P99_MS = 30.0


def signed(validator: RequestValidator, session: requests.Session, base_url: str, path: str,
           params: dict[str, str]) -> tuple[float, int]:
    headers = {"X-Twilio-Signature": validator.compute_signature(PUBLIC_BASE_URL + path, params)}
    started = time.perf_counter()
    reply = session.post(base_url + path, data=params, headers=headers, timeout=10)
    return (time.perf_counter() - started) * 1000, reply.status_code


def drive(base_url: str, rate: float, seconds: float, with_menu: bool) -> dict[str, Any]:
    """Open-loop load: call n starts at n/rate seconds; it posts the greeting (then the menu choice)."""
    validator = RequestValidator(AUTH_TOKEN)
    local = threading.local()
    latencies: dict[str, list[float]] = {"/voice/incoming": []} | ({"/voice/menu": []} if with_menu else {})
    failures: list[str] = []
    lateness: list[float] = []
    lock = threading.Lock()

    def one_call(n: int, due: float) -> None:
        lateness.append(max(0.0, time.perf_counter() - due) * 1000)
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        call = {"CallSid": f"CA{n:032x}", "From": f"+1415555{n % 10000:04d}", "To": "+15005550000",
                "CallStatus": "ringing", "Direction": "inbound", "AccountSid": "AC" + "b" * 32}
        steps = [("/voice/incoming", {})] + ([("/voice/menu", {"Digits": str(1 + n % 3)})] if with_menu else [])
        for path, extra in steps:
            elapsed, status = signed(validator, session, base_url, path, {**call, **extra})
            with lock:
                latencies[path].append(elapsed)
                if status != 200:
                    failures.append(f"{path} -> HTTP {status}")

    total = int(rate * seconds)
    start = time.perf_counter() + 0.5
    with ThreadPoolExecutor(max_workers=64) as pool:
        for n in range(total):
            due = start + n / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            pool.submit(one_call, n, due)
    return {"calls": total, "rate": rate, "failures": failures[:10], "failure_count": len(failures),
            "client_lateness_p99_ms": _percentile(lateness, 99),
            "webhooks": {path: _summary(values) for path, values in latencies.items()}}


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))], 2) if ordered else 0.0


def _summary(values: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(values), 2), "p99_ms": _percentile(values, 99),
            "max_ms": round(max(values), 2), "count": len(values)}


def measure(backend: str, setting: Setting, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    with fresh_database(backend, scratch, args.postgres_url, "webhooks") as database_url:
        env = server_environment(database_url, sweeper=False)
        env.update(PUBLIC_BASE_URL=PUBLIC_BASE_URL, CONTACT_CENTER_FILE=str(ROOT / "contact-center.toml"))
        for command in (("init-db",), ("contact-center", "load")):
            done = flask_command(env, *command)
            if done.returncode != 0:
                raise RuntimeError(f"flask {' '.join(command)} failed:\n{done.stdout}{done.stderr[-3000:]}")
        with gunicorn(setting, env, scratch / f"gunicorn-{backend}.log") as (base_url, _pid):
            drive(base_url, args.rate, 2, args.with_menu)  # warm-up: connections, caches, the contact center
            result = drive(base_url, args.rate, args.seconds, args.with_menu)
    return {"backend": backend, "server": str(setting), "with_menu": args.with_menu, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0, help="calls per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--servers", default="gthread:2x4")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--with-menu", action="store_true", help="each call also chooses in the menu (task created)")
    args = parser.parse_args(argv)
    results = {"machine": machine(), "target_p99_ms": TARGET_P99_MS, "runs": []}
    with tempfile.TemporaryDirectory() as scratch:
        for backend in args.backends.split(","):
            for server in args.servers.split(","):
                run = measure(backend, Setting.parse(server), args, Path(scratch))
                results["runs"].append(run)
                print(f"{backend:10} {run['server']:12} {run['calls']} calls at {run['rate']:.0f}/s, "
                      f"{run['failure_count']} failures")
                for path, s in run["webhooks"].items():
                    print(f"    {path:17} median {s['median_ms']:6.1f} ms   p99 {s['p99_ms']:6.1f} ms   "
                          f"max {s['max_ms']:6.1f} ms")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ("webhooks-menu.json" if args.with_menu else "webhooks.json")).write_text(json.dumps(results, indent=2))
    worst = max(run["webhooks"]["/voice/incoming"]["p99_ms"] for run in results["runs"])
    print(f"worst p99 of /voice/incoming: {worst:.1f} ms (target <= {TARGET_P99_MS:.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
