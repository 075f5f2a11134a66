"""The Router: the engine's entry point, and `Tx`, the one transaction every operation runs in.

An operation opens `router.transaction(workspace_sid)`, changes state, and marks what could now
be matched (`tx.wake_task`, `tx.wake_worker`). Before commit the transaction runs matching for
what was woken, then writes the collected events, timers and outbox rows. After commit, listeners
(live updates) hear about the events and the outbox deliverer is nudged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.orm import Session, sessionmaker

from . import events as events_module
from . import flush, retention, statements
from .callback_network import CallbackPolicy
from .clock import SystemClock
from .configuration import ConfigurationCache, WorkspaceConfiguration, load_configuration
from .db import database_url_from_env, lock_workspace, make_engines, sqlite_checkpointer, sqlite_writer_lock
from .errors import NotFound
from .models import Activity, Base, OutboxMessage, Task, TaskChannel, TaskQueue, Timer, Worker, Workflow, Workspace

log = logging.getLogger("callcenter.routing")

EventListener = Callable[[list[dict[str, Any]]], None]


class Router:
    """One engine on one database. Thread-safe; share one per process."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        clock: Any = None,
        transport: Any = None,
        instruction_handler: Callable[..., Any] | None = None,
        auth_token_for: Callable[[str], str | None] | None = None,
        pool: dict[str, Any] | None = None,
    ) -> None:
        self.database_url = database_url or database_url_from_env()
        # pool: pool_size, max_overflow, pool_timeout, pool_recycle (db.make_engines; defaults there).
        self.writer, self.reader = make_engines(self.database_url, **(pool or {}))
        self._sqlite_writers = sqlite_writer_lock(self.database_url)
        self._checkpointer = sqlite_checkpointer(self.database_url)  # WAL checkpoints off the commit path
        self.clock = clock or SystemClock()
        self._write_sessions = sessionmaker(self.writer, expire_on_commit=False, autoflush=True)
        flush.install(self._write_sessions)  # changed rows are written without the ORM's unit of work
        self._read_sessions = sessionmaker(self.reader, expire_on_commit=False)
        self._sessions = threading.local()  # see _session
        # How long events are kept (None: for ever); the sweeper deletes older ones (retention.py).
        self.event_retention: timedelta | None = retention.EVENT_RETENTION
        # What is deleted past its retention, as (what, purge) pairs: the sweeper runs each purge in turn and
        # logs how many `what` it deleted. The engine's come first; apps add theirs (the voice app's call records).
        self.purgers: list[tuple[str, Callable[[Router], int]]] = [
            ("events", retention.purge_expired_events), ("callbacks given up on", retention.purge_dead_callbacks)]
        self.listeners: list[EventListener] = []
        # Voice instructions in assignment-callback replies and Instruction parameters
        # (dequeue, call, redirect, conference) are carried out by the app that owns the calls.
        self.instruction_handler = instruction_handler
        # Outbound callbacks are signed with the account's auth token, as Twilio signs them.
        self.auth_token_for = auth_token_for or (lambda account_sid: None)
        # The networks callbacks may not reach, checked when a callback URL is saved and when one is sent.
        self.callback_policy = CallbackPolicy()
        from .outbox import Deliverer

        self.deliverer = Deliverer(self, transport=transport)
        self.configurations = ConfigurationCache()
        self._outbox_ready = threading.Event()

    # -- schema ---------------------------------------------------------------------------------
    def create_schema(self) -> None:
        """Create every table (tests and first runs; production upgrades go through Alembic)."""
        Base.metadata.create_all(self.writer)

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        if self._sqlite_writers is not None:
            self._sqlite_writers.close()
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()

    # -- transactions ---------------------------------------------------------------------------
    @contextmanager
    def transaction(self, workspace_sid: str | None) -> Iterator[Tx]:
        """One write transaction, serialized with every other writer of the same workspace."""
        if self._sqlite_writers is None:
            with self._transaction(workspace_sid) as tx:
                yield tx
        else:
            with self._sqlite_writers.held(), self._transaction(workspace_sid) as tx:
                yield tx
            if self._checkpointer is not None:
                self._checkpointer.committed()
        # After commit, outside any lock: nudge the outbox deliverer, tell live-update listeners.
        if tx.outbox_written:
            self._outbox_ready.set()
        if tx.committed_events:
            for listener in list(self.listeners):
                try:
                    listener(tx.committed_events)
                except Exception:  # a live-update listener must never break routing
                    log.exception("event listener failed")

    def _session(self, kind: str, sessions: sessionmaker) -> Session:
        """This thread's session of `kind` ("write" or "read"), reused from one transaction to the next
        (closed after each, so it holds no objects or connection in between): making a Session cost a
        sixth of an empty transaction. A transaction opened inside another on the same thread gets a new one."""
        session = getattr(self._sessions, kind, None)
        if session is None:
            session = sessions()
            setattr(self._sessions, kind, session)
        elif session.in_transaction():
            session = sessions()
        return session

    @contextmanager
    def _transaction(self, workspace_sid: str | None) -> Iterator[Tx]:
        session = self._session("write", self._write_sessions)
        try:
            with session.begin():
                workspace = None
                if workspace_sid is not None:
                    lock_workspace(statements.connection(session), workspace_sid)
                    workspace = statements.load(session, Workspace, workspace_sid)
                    if workspace is None:
                        raise NotFound(f"The requested resource /Workspaces/{workspace_sid} was not found")
                tx = Tx(self, session, workspace, self.clock.now())
                yield tx
                tx.finish()
        finally:
            session.close()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session that never waits for writers."""
        session = self._session("read", self._read_sessions)
        try:
            with session.begin():
                yield session
        finally:
            session.close()

    # -- background work ------------------------------------------------------------------------
    def run_due_timers(self, limit: int = 500) -> int:
        from .timers import fire_due_timers

        return fire_due_timers(self, limit=limit)

    def purge_expired_events(self, **limits: int) -> int:
        return retention.purge_expired_events(self, **limits)

    def purge_dead_callbacks(self, **limits: int) -> int:
        return retention.purge_dead_callbacks(self, **limits)

    def deliver_outbox(self, limit: int = 100) -> int:
        return self.deliverer.deliver_due(limit=limit)

    def wait_for_outbox(self, timeout: float) -> bool:
        ready = self._outbox_ready.wait(timeout)
        self._outbox_ready.clear()
        return ready


# Every transaction writes these: built once (constructing a statement costs more than running it).
_TIMERS = Timer.__table__
# One probe of the (kind, subject_sid) index per key, sent as one executemany: SQLite answers
# `(kind, subject_sid) IN (VALUES ...)` by scanning every timer (500,000 of them at the limit).
_DELETE_TIMERS = _TIMERS.delete().where(_TIMERS.c.kind == bindparam("of_kind"),
                                        _TIMERS.c.subject_sid == bindparam("of_subject"))
_EVENTS = events_module.Event.__table__
_OUTBOX = OutboxMessage.__table__


class Tx:
    """The state of one engine transaction."""

    def __init__(self, router: Router, session: Session, workspace: Workspace | None, now: datetime) -> None:
        self.router = router
        self.session = session
        self.workspace = workspace
        self.now = now
        self._events: list[dict[str, Any]] = []
        self._outbox: list[dict[str, Any]] = []
        self._woken_tasks: dict[str, Task] = {}
        self._woken_workers: dict[str, Worker] = {}
        self.committed_events: list[dict[str, Any]] = []
        self.outbox_written = False
        self._timers: dict[tuple[str, str], datetime | None] = {}
        self._created: set[str] = set()
        self._offered: set[str] = set()
        self.versioned_workers: set[str] = set()  # workers whose version this transaction has raised
        self._config: WorkspaceConfiguration | None = None
        self._config_changed = False
        self._worker_channels: dict[tuple[str, str], Any] = {}
        self._all_channels: dict[str, list[Any]] = {}
        self._active_reservations: dict[str, Any] = {}
        self._held: list[Any] = []

    # -- the workspace's configuration, from the process cache ------------------------------------
    @property
    def config(self) -> WorkspaceConfiguration:
        if self._config is None:
            cache = self.router.configurations
            cached = None if self._config_changed else cache.get(self.workspace)
            if cached is None:
                self.session.flush()
                cached = load_configuration(self.session, self.workspace)
                if not self._config_changed:
                    # Detached at once: a rollback of this session must not expire shared copies.
                    for rows in (cached.activities, cached.channels, cached.queues, cached.workflows):
                        for row in rows.values():
                            self.session.expunge(row)
                    cache.put(self.workspace.sid, cached)
            self._config = cached
        return self._config

    def config_changed(self) -> None:
        """This transaction changes an activity, channel, queue or workflow: other processes must reload."""
        if not self._config_changed:
            self.workspace.config_version += 1
            self.router.configurations.drop(self.workspace.sid)
            self._config_changed = True
        self._config = None  # rows read from now on in this transaction come from the session

    def activity(self, sid: str) -> Activity:
        activity = self.config.activities.get(sid)
        if activity is None:
            raise NotFound(f"Activity {sid} not found in this workspace")
        return activity

    def channel(self, sid: str) -> TaskChannel:
        channel = self.config.channels.get(sid)
        if channel is None:
            raise NotFound(f"TaskChannel {sid} not found in this workspace")
        return channel

    def queue(self, sid: str) -> TaskQueue:
        queue = self.config.queues.get(sid)
        if queue is None:
            raise NotFound(f"TaskQueue {sid} not found in this workspace")
        return queue

    def workflow(self, sid: str) -> Workflow:
        workflow = self.config.workflows.get(sid)
        if workflow is None:
            raise NotFound(f"Workflow {sid} not found in this workspace")
        return workflow

    def get(self, model: type, sid: str, name: str | None = None):
        """Fetch a resource of this workspace or raise NotFound."""
        row = statements.load(self.session, model, sid) if isinstance(sid, str) else None
        if row is None or getattr(row, "workspace_sid", None) != self.workspace.sid:
            raise NotFound(f"The requested resource {name or model.__name__} {sid} was not found")
        return row

    def hold(self, *rows: Any) -> None:
        """Keep rows loaded together with another alive until commit: the session's identity map holds
        them only weakly, and `session.get` finds them there without SQL while they live."""
        self._held.extend(row for row in rows if row is not None)

    def remember_channel(self, channel: Any) -> None:
        """A WorkerChannel loaded in this transaction: found again by (worker, task channel) without SQL."""
        self._worker_channels[(channel.worker_sid, channel.task_channel_sid)] = channel

    def remembered_channel(self, worker_sid: str, task_channel_sid: str) -> Any:
        return self._worker_channels.get((worker_sid, task_channel_sid))

    def remember_active_reservation(self, task_sid: str, reservation: Any) -> None:
        """The task's accepted or wrapping reservation, loaded with it (`tasks._load_with_assignment`)."""
        self._active_reservations[task_sid] = reservation

    def active_reservation_of(self, task_sid: str) -> Any:
        reservation = self._active_reservations.get(task_sid)
        if reservation is not None and reservation.reservation_status in ("accepted", "wrapping"):
            return reservation
        return None

    def remember_channels(self, worker_sid: str, channels: list[Any]) -> None:
        """All of a worker's channels, loaded in this transaction (`workers.channels_of`)."""
        self._all_channels[worker_sid] = channels
        for channel in channels:
            self.remember_channel(channel)

    def loaded_channels(self, worker_sid: str) -> list[Any] | None:
        return self._all_channels.get(worker_sid)

    def forget_channels(self) -> None:
        """Worker channels were created in this transaction: lists loaded before miss them."""
        self._all_channels.clear()

    # -- what must happen before commit ----------------------------------------------------------
    def wake_task(self, task: Task) -> None:
        self._woken_tasks[task.sid] = task

    def wake_worker(self, worker: Worker) -> None:
        self._woken_workers[worker.sid] = worker

    def unwake_task(self, task: Task) -> None:
        """A task deleted in this transaction must not be matched before commit."""
        self._woken_tasks.pop(task.sid, None)

    def add_event(self, row: dict[str, Any]) -> None:
        self._events.append(row)
        workspace = self.workspace
        if workspace.event_callback_url and events_module.wants_callback(workspace.events_filter, row["event_type"]):
            self.add_outbox(
                kind="event",
                url=workspace.event_callback_url,
                payload=events_module.callback_params(row),
                ordering_key=row["task_sid"] or row["resource_sid"],
            )

    def add_outbox(self, *, kind: str, url: str, payload: dict[str, str], fallback_url: str | None = None,
                   reservation_sid: str | None = None, ordering_key: str | None = None) -> None:
        self._outbox.append(
            {
                "workspace_sid": self.workspace.sid,
                "kind": kind,
                "url": url,
                "fallback_url": fallback_url,
                "payload": events_module.compact_json(payload),
                "reservation_sid": reservation_sid,
                "ordering_key": ordering_key,
                "attempts": 0,
                "next_attempt_at": self.now,
                "created_at": self.now,
                "status": "pending",
            }
        )

    def schedule(self, kind: str, subject_sid: str, due_at: datetime | float) -> None:
        """Set (or move) the timer `kind` of `subject_sid`; seconds count from now. Written at commit."""
        if not isinstance(due_at, datetime):
            due_at = self.now + timedelta(seconds=due_at)
        self._timers[(kind, subject_sid)] = due_at

    def created(self, sid: str) -> None:
        """`sid` is new in this transaction: it has no timers to replace."""
        self._created.add(sid)

    def never_offered(self, task_sid: str) -> bool:
        """The task was created in this transaction and has had no reservation yet: no offer can block a worker."""
        return task_sid in self._created and task_sid not in self._offered

    def offered(self, task_sid: str) -> None:
        self._offered.add(task_sid)

    def cancel_timer(self, *kinds: str, subject_sid: str | None = None) -> None:
        """Cancel timers: `cancel_timer("task_ttl", sid)` or `cancel_timer("a", "b", subject_sid=sid)`."""
        if subject_sid is None:
            *kinds, subject_sid = kinds
        for kind in kinds:
            self._timers[(kind, subject_sid)] = None

    def _write_timers(self) -> None:
        # Every timer change of the transaction in two statements; Core on the connection because
        # no Timer object lives in the session (the ORM's bulk bookkeeping would only cost time).
        if not self._timers:
            return
        connection = statements.connection(self.session)
        keys = [{"of_kind": kind, "of_subject": subject} for kind, subject in self._timers
                if subject not in self._created]
        if keys:
            statements.run_many(connection, _DELETE_TIMERS, keys)
        rows = [{"workspace_sid": self.workspace.sid, "kind": kind, "subject_sid": subject, "due_at": due}
                for (kind, subject), due in self._timers.items() if due is not None]
        if rows:
            statements.insert_rows(connection, _TIMERS, rows)
        self._timers.clear()

    def finish(self) -> None:
        from .matching import run_matching

        if self._woken_tasks or self._woken_workers:
            run_matching(self)
        self.session.flush()
        self._write_timers()
        # One executemany on the connection for all of the transaction's events, one for its outbox rows.
        connection = statements.connection(self.session)
        if self._events:
            statements.insert_rows(connection, _EVENTS, self._events)
            self.committed_events = self._events
        if self._outbox:
            statements.insert_rows(connection, _OUTBOX, self._outbox)
            self.outbox_written = True

    def take_woken(self) -> tuple[list[Task], list[Worker]]:
        tasks, workers = list(self._woken_tasks.values()), list(self._woken_workers.values())
        self._woken_tasks.clear()
        self._woken_workers.clear()
        return tasks, workers
