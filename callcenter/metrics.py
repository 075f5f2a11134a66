"""Prometheus metrics at `/metrics`.

Two sources, so that several gunicorn processes report one truth:
- The database, read at scrape time (`DatabaseCollector`): tasks by status, waiting tasks and the
  oldest one's age per queue, reservations by outcome (running totals that each scrape brings up to
  date with the events written since the last one: `callcenter.reservation_counts`), outbox messages
  pending or abandoned, and how long the oldest due timer has been waiting to fire (near zero while
  sweepers keep up). Any process answers the same.
- Each process's own observations: callback deliveries (latency histogram, failed attempts,
  abandoned messages; `outbox.DELIVERY_OBSERVERS`) and the lag of each fired timer (now - due_at;
  `timers.FIRED_OBSERVERS`). With several processes, set
  `PROMETHEUS_MULTIPROC_DIR` to an empty directory shared by them (before they start): each
  process writes its values there and a scrape of any process sums them. Without it, a scrape
  shows the observations of the process that answered.
"""

from __future__ import annotations

import logging
import os

from flask import Flask, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import and_, func, select

from callcenter.reservation_counts import OUTCOMES as RESERVATION_OUTCOMES
from callcenter.reservation_counts import count_reservations
from callcenter.routing import Router
from callcenter.routing.models import TASK_STATUSES, OutboxMessage, Task, TaskQueue, Timer
from callcenter.routing.outbox import DELIVERY_OBSERVERS
from callcenter.routing.timers import FIRED_OBSERVERS, HANDLERS

log = logging.getLogger("callcenter.metrics")

# Not in the default registry: each scrape builds its own (see `render`).
CALLBACK_SECONDS = Histogram(
    "callcenter_callback_duration_seconds", "Time one callback POST took, by kind and outcome",
    ["kind", "outcome"], registry=None, buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
)
CALLBACK_FAILURES = Counter("callcenter_callback_failures", "Callback POSTs that failed (refused, timed out, non-2xx)",
                            ["kind"], registry=None)
CALLBACKS_ABANDONED = Counter("callcenter_callbacks_abandoned", "Callbacks given up after their last attempt",
                              ["kind"], registry=None)
TIMER_LAG = Histogram(
    "callcenter_timer_lag_seconds", "How late each timer fired (fire time - due_at), by kind",
    ["kind"], registry=None, buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
PROCESS_METRICS = (CALLBACK_SECONDS, CALLBACK_FAILURES, CALLBACKS_ABANDONED, TIMER_LAG)


def observe_delivery(outcome: str, kind: str, seconds: float | None) -> None:
    """The outbox's observer: one POST ("delivered" / "failed") or one message given up ("abandoned")."""
    if outcome == "abandoned":
        CALLBACKS_ABANDONED.labels(kind).inc()
        return
    CALLBACK_SECONDS.labels(kind, outcome).observe(seconds or 0.0)
    if outcome == "failed":
        CALLBACK_FAILURES.labels(kind).inc()


def observe_timer(kind: str, lag_seconds: float) -> None:
    """The timers' observer: one timer fired, `lag_seconds` after it was due."""
    TIMER_LAG.labels(kind).observe(max(0.0, lag_seconds))


class DatabaseCollector:
    """Gauges and counters read from the database at each scrape (the same from every process)."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def collect(self):
        up = GaugeMetricFamily("callcenter_database_up", "1 if the database answered this scrape's queries")
        try:
            families = self._read()
        except Exception:  # the scrape must answer, and say the database did not
            log.exception("metrics: reading the database failed")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> list:
        now = self.router.clock.now()
        # Its own short transactions: it adds the events written since the last scrape to the totals.
        reservations = count_reservations(self.router)
        with self.router.read() as session:
            task_counts = session.execute(
                select(Task.workspace_sid, Task.assignment_status, func.count())
                .group_by(Task.workspace_sid, Task.assignment_status)).all()
            queues = session.execute(
                select(TaskQueue.workspace_sid, TaskQueue.sid, TaskQueue.friendly_name, func.count(Task.sid),
                       func.min(Task.date_created))
                .outerjoin(Task, and_(Task.task_queue_sid == TaskQueue.sid,
                                      Task.assignment_status.in_(("pending", "reserved"))))
                .group_by(TaskQueue.workspace_sid, TaskQueue.sid, TaskQueue.friendly_name)).all()
            outbox = session.execute(
                select(OutboxMessage.kind, OutboxMessage.status, func.count(), func.min(OutboxMessage.created_at))
                .group_by(OutboxMessage.kind, OutboxMessage.status)).all()
            overdue = session.execute(
                select(Timer.kind, func.count(), func.min(Timer.due_at)).where(Timer.due_at <= now)
                .group_by(Timer.kind)).all()

        tasks = GaugeMetricFamily("callcenter_tasks", "Tasks by assignment status", labels=["workspace_sid", "status"])
        counts = {(ws, status): count for ws, status, count in task_counts}
        for ws in sorted({ws for ws, _ in counts}):
            for status in TASK_STATUSES:
                tasks.add_metric([ws, status], counts.get((ws, status), 0))

        labels = ["workspace_sid", "task_queue_sid", "task_queue_name"]
        waiting = GaugeMetricFamily("callcenter_task_queue_waiting_tasks", "Pending and reserved tasks per queue",
                                    labels=labels)
        oldest = GaugeMetricFamily("callcenter_task_queue_oldest_waiting_seconds",
                                   "Age of the oldest pending or reserved task per queue (0 when none waits)",
                                   labels=labels)
        for ws, sid, name, count, first_created in queues:
            waiting.add_metric([ws, sid, name], count)
            oldest.add_metric([ws, sid, name], max(0.0, (now - first_created).total_seconds()) if first_created else 0)

        outcomes = CounterMetricFamily("callcenter_reservations", "Reservations by outcome (from the events table)",
                                       labels=["workspace_sid", "outcome"])
        for ws in sorted({ws for ws, _ in reservations}):
            for outcome in RESERVATION_OUTCOMES:
                outcomes.add_metric([ws, outcome], reservations.get((ws, outcome), 0))

        messages = GaugeMetricFamily("callcenter_outbox_messages",
                                     "Callbacks waiting to be delivered (pending) or given up (dead)",
                                     labels=["kind", "status"])
        pending_age = GaugeMetricFamily("callcenter_outbox_oldest_pending_seconds",
                                        "Age of the oldest callback not yet delivered", labels=["kind"])
        found = {(kind, status): (count, first) for kind, status, count, first in outbox}
        for kind in ("assignment", "event"):
            for status in ("pending", "dead"):
                messages.add_metric([kind, status], found.get((kind, status), (0, None))[0])
            first = found.get((kind, "pending"), (0, None))[1]
            pending_age.add_metric([kind], max(0.0, (now - first).total_seconds()) if first else 0)

        lag = GaugeMetricFamily("callcenter_timer_oldest_due_seconds",
                                "How long the oldest due timer has waited to fire (now - due_at; 0 when none is due)",
                                labels=["kind"])
        due = GaugeMetricFamily("callcenter_timers_due", "Timers due and not yet fired", labels=["kind"])
        late = {kind: (count, first) for kind, count, first in overdue}
        for kind in sorted(set(HANDLERS) | set(late)):
            count, first = late.get(kind, (0, None))
            due.add_metric([kind], count)
            lag.add_metric([kind], max(0.0, (now - first).total_seconds()) if first else 0)
        return [tasks, waiting, oldest, outcomes, messages, pending_age, due, lag]


def render(router: Router) -> bytes:
    """The exposition text of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        for metric in PROCESS_METRICS:
            registry.register(metric)
    registry.register(DatabaseCollector(router))
    return generate_latest(registry)


def init_app(app: Flask) -> None:
    """Serve `/metrics` and count this process's callback deliveries."""
    from callcenter.database import get_router

    if observe_delivery not in DELIVERY_OBSERVERS:
        DELIVERY_OBSERVERS.append(observe_delivery)
    if observe_timer not in FIRED_OBSERVERS:
        FIRED_OBSERVERS.append(observe_timer)

    @app.get("/metrics")
    def metrics():
        """Prometheus exposition format; restrict who can reach it (it needs no credentials)."""
        return Response(render(get_router(app)), content_type=CONTENT_TYPE_LATEST)
