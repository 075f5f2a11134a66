"""The engine's tables, as SQLAlchemy 2.x typed models.

Constraints live in the database (unique names per workspace, foreign keys, check constraints on
statuses), so that a bug in Python cannot store a state the engine does not know. Times are naive
UTC datetimes. Columns that exist only to make matching an indexed query (counters on worker
channels and tasks, the queue membership table) are kept up to date by the engine in the same
transaction as the change they summarise.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SID = String(34)

TASK_STATUSES = ("pending", "reserved", "assigned", "wrapping", "completed", "canceled")
RESERVATION_STATUSES = (
    "pending", "accepted", "rejected", "timeout", "canceled", "rescinded", "wrapping", "completed",
)
TIMER_KINDS = ("reservation_timeout", "target_timeout", "task_ttl", "task_cleanup", "assigned_max_age")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Workspace(Base):
    __tablename__ = "workspaces"

    sid: Mapped[str] = mapped_column(SID, primary_key=True)
    account_sid: Mapped[str] = mapped_column(SID, index=True)
    friendly_name: Mapped[str] = mapped_column(String(64))
    event_callback_url: Mapped[str | None] = mapped_column(Text)
    events_filter: Mapped[str | None] = mapped_column(Text)
    multi_task_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    prioritize_queue_order: Mapped[str] = mapped_column(String(4), default="FIFO")
    # Not foreign keys: activities reference their workspace, and a cycle would make
    # creation and deletion order-dependent. The engine validates both on update.
    default_activity_sid: Mapped[str | None] = mapped_column(SID)
    timeout_activity_sid: Mapped[str | None] = mapped_column(SID)
    # Bumped by every change to the workspace's activities, channels, queues and workflows, so
    # that each process's cached copy of them is known to be current (configuration.py).
    config_version: Mapped[int] = mapped_column(Integer, default=1)
    date_created: Mapped[datetime] = mapped_column(DateTime)
    date_updated: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        CheckConstraint(_in("prioritize_queue_order", ("FIFO", "LIFO")), name="queue_order"),
    )


class Activity(Base):
    __tablename__ = "activities"

    sid: Mapped[str] = mapped_column(SID, primary_key=True)
    workspace_sid: Mapped[str] = mapped_column(ForeignKey("workspaces.sid", ondelete="CASCADE"))
    friendly_name: Mapped[str] = mapped_column(String(64))
    available: Mapped[bool] = mapped_column(Boolean)
    date_created: Mapped[datetime] = mapped_column(DateTime)
    date_updated: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (UniqueConstraint("workspace_sid", "friendly_name"),)


class TaskChannel(Base):
    __tablename__ = "task_channels"

    sid: Mapped[str] = mapped_column(SID, primary_key=True)
    workspace_sid: Mapped[str] = mapped_column(ForeignKey("workspaces.sid", ondelete="CASCADE"))
    friendly_name: Mapped[str] = mapped_column(String(64))
    unique_name: Mapped[str] = mapped_column(String(64))
    channel_optimized_routing: Mapped[bool | None] = mapped_column(Boolean)
    date_created: Mapped[datetime] = mapped_column(DateTime)
    date_updated: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (UniqueConstraint("workspace_sid", "unique_name"),)


class TaskQueue(Base):
    __tablename__ = "task_queues"

    sid: Mapped[str] = mapped_column(SID, primary_key=True)
    workspace_sid: Mapped[str] = mapped_column(ForeignKey("workspaces.sid", ondelete="CASCADE"), index=True)
    friendly_name: Mapped[str] = mapped_column(String(64))
    target_workers: Mapped[str | None] = mapped_column(Text)
    max_reserved_workers: Mapped[int] = mapped_column(Integer, default=1)
    task_order: Mapped[str] = mapped_column(String(4), default="FIFO")
    reservation_activity_sid: Mapped[str | None] = mapped_column(ForeignKey("activities.sid"))
    assignment_activity_sid: Mapped[str | None] = mapped_column(ForeignKey("activities.sid"))
    date_created: Mapped[datetime] = mapped_column(DateTime)
    date_updated: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("workspace_sid", "friendly_name"),
        CheckConstraint("max_reserved_workers BETWEEN 1 AND 50", name="max_reserved_workers"),
        CheckConstraint(_in("task_order", ("FIFO", "LIFO")), name="task_order"),
    )


class Worker(Base):
    __tablename__ = "workers"

    sid: Mapped[str] = mapped_column(SID, primary_key=True)
    workspace_sid: Mapped[str] = mapped_column(ForeignKey("workspaces.sid", ondelete="CASCADE"))
    friendly_name: Mapped[str] = mapped_column(String(64))
    # Friendly names are unique case-insensitively; the folded copy carries the constraint. Folding
    # lengthens some names, up to three characters for one ("ﬃ" -> "ffi").
    name_key: Mapped[str] = mapped_column(String(192))
    attributes: Mapped[str] = mapped_column(Text, default="{}")
    activity_sid: Mapped[str] = mapped_column(ForeignKey("activities.sid"))
    available: Mapped[bool] = mapped_column(Boolean)
    # Pending + accepted + wrapping reservations on every channel (single-tasking holds one).
    active_reservations: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    date_status_changed: Mapped[datetime] = mapped_column(DateTime)
    date_created: Mapped[datetime] = mapped_column(DateTime)
    date_updated: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("workspace_sid", "name_key"),
        CheckConstraint("active_reservations >= 0", name="active_reservations"),
        Index("ix_workers_workspace_available", "workspace_sid", "available"),
        Index("ix_workers_activity", "activity_sid"),
    )


class WorkerChannel(Base):
    __tablename__ = "worker_channels"

    sid: Mapped[str] = mapped_column(SID, primary_key=True)
    workspace_sid: Mapped[str] = mapped_column(ForeignKey("workspaces.sid", ondelete="CASCADE"))
    worker_sid: Mapped[str] = mapped_column(ForeignKey("workers.sid", ondelete="CASCADE"))
    task_channel_sid: Mapped[str] = mapped_column(ForeignKey("task_channels.sid", ondelete="CASCADE"))
    capacity: Mapped[int] = mapped_column(Integer, default=1)
    available: Mapped[bool] = mapped_column(Boolean, default=True)
    # pending + accepted + wrapping reservations on this channel (what capacity limits)
    reserved_tasks: Mapped[int] = mapped_column(Integer, default=0)
    # accepted + wrapping reservations (TaskRouter's `assigned_tasks`)
    assigned_tasks: Mapped[int] = mapped_column(Integer, default=0)
    # When this worker last got or finished work, or became available, on this channel:
    # the oldest value is the longest-idle worker, who is offered the next task.
    idle_since: Mapped[datetime] = mapped_column(DateTime)
    # A copy of the worker's `available`, so that the longest-idle index skips offline workers (they
    # keep their old idle_since and would otherwise be walked past on every match). Matching still
    # tests `workers.available`; a stale True here costs time, never a wrong match.
    worker_available: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    date_created: Mapped[datetime] = mapped_column(DateTime)
    date_updated: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("worker_sid", "task_channel_sid"),
        CheckConstraint("capacity BETWEEN 0 AND 50", name="capacity"),
        CheckConstraint("reserved_tasks >= 0 AND assigned_tasks >= 0", name="counts"),
        # Longest idle first per channel, with every column the candidate query filters on (matching.py).
        Index("ix_worker_channels_idle", "task_channel_sid", "worker_available", "idle_since", "worker_sid",
              "available", "reserved_tasks", "capacity"),
    )


class TaskQueueMember(Base):
    """A worker whose attributes match the queue's `target_workers` (kept current on every change)."""

    __tablename__ = "task_queue_members"

    task_queue_sid: Mapped[str] = mapped_column(
        ForeignKey("task_queues.sid", ondelete="CASCADE"), primary_key=True
    )
    worker_sid: Mapped[str] = mapped_column(ForeignKey("workers.sid", ondelete="CASCADE"), primary_key=True)

    __table_args__ = (Index("ix_task_queue_members_worker", "worker_sid"),)


class Workflow(Base):
    __tablename__ = "workflows"

    sid: Mapped[str] = mapped_column(SID, primary_key=True)
    workspace_sid: Mapped[str] = mapped_column(ForeignKey("workspaces.sid", ondelete="CASCADE"), index=True)
    friendly_name: Mapped[str] = mapped_column(String(64))
    configuration: Mapped[str] = mapped_column(Text)
    assignment_callback_url: Mapped[str | None] = mapped_column(Text)
    fallback_assignment_callback_url: Mapped[str | None] = mapped_column(Text)
    task_reservation_timeout: Mapped[int] = mapped_column(Integer, default=120)
    date_created: Mapped[datetime] = mapped_column(DateTime)
    date_updated: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        CheckConstraint("task_reservation_timeout BETWEEN 1 AND 86400", name="reservation_timeout"),
    )


class Task(Base):
    __tablename__ = "tasks"

    sid: Mapped[str] = mapped_column(SID, primary_key=True)
    workspace_sid: Mapped[str] = mapped_column(ForeignKey("workspaces.sid", ondelete="CASCADE"))
    workflow_sid: Mapped[str | None] = mapped_column(ForeignKey("workflows.sid", ondelete="SET NULL"))
    task_channel_sid: Mapped[str] = mapped_column(ForeignKey("task_channels.sid"))
    attributes: Mapped[str] = mapped_column(Text, default="{}")
    assignment_status: Mapped[str] = mapped_column(String(10))
    priority: Mapped[int] = mapped_column(BigInteger, default=0)
    timeout: Mapped[int] = mapped_column(Integer, default=86400)
    reason: Mapped[str | None] = mapped_column(Text)
    task_queue_sid: Mapped[str | None] = mapped_column(ForeignKey("task_queues.sid", ondelete="SET NULL"))
    task_queue_entered_date: Mapped[datetime | None] = mapped_column(DateTime)
    virtual_start_time: Mapped[datetime] = mapped_column(DateTime)
    # Where the task is in its workflow: the matched filter (-1 = default_filter) and target.
    filter_index: Mapped[int | None] = mapped_column(Integer)
    target_index: Mapped[int | None] = mapped_column(Integer)
    pending_reservations: Mapped[int] = mapped_column(Integer, default=0)
    # pending -> reserved transitions; the task is canceled after 1,000 of them
    assignment_count: Mapped[int] = mapped_column(Integer, default=0)
    routing_target: Mapped[str | None] = mapped_column(SID)
    ignore_capacity: Mapped[bool | None] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer, default=1)
    date_created: Mapped[datetime] = mapped_column(DateTime)
    date_updated: Mapped[datetime] = mapped_column(DateTime)
    date_assigned: Mapped[datetime | None] = mapped_column(DateTime)
    date_finished: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        CheckConstraint(_in("assignment_status", TASK_STATUSES), name="assignment_status"),
        CheckConstraint("pending_reservations >= 0", name="pending_reservations"),
        Index("ix_tasks_queue_waiting", "task_queue_sid", "assignment_status", "priority", "virtual_start_time"),
        Index("ix_tasks_workspace_status", "workspace_sid", "assignment_status", "date_created"),
        Index("ix_tasks_workflow", "workflow_sid"),
    )


# Waiting tasks of one queue and channel in the order a FIFO queue serves them: a worker who becomes
# available reads the head of each of their queues instead of sorting or filtering every waiting task
# (500,000 at the limit). Partial, so finished tasks cost it nothing; queries repeat the literal
# predicate so that it applies.
WAITING_PREDICATE = "assignment_status IN ('pending', 'reserved')"
Index("ix_tasks_waiting_order", Task.task_queue_sid, Task.task_channel_sid, Task.priority.desc(),
      Task.virtual_start_time, Task.sid,
      sqlite_where=text(WAITING_PREDICATE), postgresql_where=text(WAITING_PREDICATE))
# LIFO queues serve newest first whatever the priority: this index, read backwards.
Index("ix_tasks_waiting_lifo", Task.task_queue_sid, Task.task_channel_sid, Task.virtual_start_time, Task.sid,
      sqlite_where=text(WAITING_PREDICATE), postgresql_where=text(WAITING_PREDICATE))


class Reservation(Base):
    __tablename__ = "reservations"

    sid: Mapped[str] = mapped_column(SID, primary_key=True)
    workspace_sid: Mapped[str] = mapped_column(ForeignKey("workspaces.sid", ondelete="CASCADE"))
    task_sid: Mapped[str] = mapped_column(ForeignKey("tasks.sid", ondelete="CASCADE"))
    worker_sid: Mapped[str] = mapped_column(ForeignKey("workers.sid", ondelete="CASCADE"))
    task_queue_sid: Mapped[str | None] = mapped_column(SID)
    workflow_sid: Mapped[str | None] = mapped_column(SID)
    task_channel_sid: Mapped[str] = mapped_column(SID)
    reservation_status: Mapped[str] = mapped_column(String(10))
    worker_previous_activity_sid: Mapped[str | None] = mapped_column(SID)
    version: Mapped[int] = mapped_column(Integer, default=1)
    date_created: Mapped[datetime] = mapped_column(DateTime)
    date_updated: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        CheckConstraint(_in("reservation_status", RESERVATION_STATUSES), name="reservation_status"),
        # With the worker second, "an offer of this task to this worker" is one index probe, which the
        # planner prefers to reading every reservation of the worker.
        Index("ix_reservations_task_worker", "task_sid", "worker_sid", "reservation_status"),
        Index("ix_reservations_worker", "worker_sid", "reservation_status"),
    )


# The events' indexes by the sid of one resource (migration 0011 made them partial).
EVENT_SID_INDEXES = {
    "ix_events_task": ("task_sid",),
    "ix_events_worker": ("worker_sid", "event_date"),
    "ix_events_queue": ("task_queue_sid", "event_type", "event_date"),
    "ix_events_workflow": ("workflow_sid", "event_type", "event_date"),
}


class Event(Base):
    __tablename__ = "events"

    # The integer id orders events as they were written (per task, and overall).
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    sid: Mapped[str] = mapped_column(SID, unique=True)
    workspace_sid: Mapped[str] = mapped_column(ForeignKey("workspaces.sid", ondelete="CASCADE"))
    account_sid: Mapped[str] = mapped_column(SID)
    event_type: Mapped[str] = mapped_column(String(64))
    event_date: Mapped[datetime] = mapped_column(DateTime)
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_sid: Mapped[str] = mapped_column(SID)
    actor_type: Mapped[str | None] = mapped_column(String(32))
    actor_sid: Mapped[str | None] = mapped_column(SID)
    description: Mapped[str] = mapped_column(Text)
    event_data: Mapped[str] = mapped_column(Text)
    # Indexed copies of what the Events list filters and the statistics read.
    task_sid: Mapped[str | None] = mapped_column(SID)
    worker_sid: Mapped[str | None] = mapped_column(SID)
    reservation_sid: Mapped[str | None] = mapped_column(SID)
    task_queue_sid: Mapped[str | None] = mapped_column(SID)
    workflow_sid: Mapped[str | None] = mapped_column(SID)
    task_channel_sid: Mapped[str | None] = mapped_column(SID)
    activity_sid: Mapped[str | None] = mapped_column(SID)
    # Where the resource moved from: the activity a worker left (worker.activity.update) and the
    # queue a task left (task-queue.moved), so statistics can group by them in SQL.
    previous_activity_sid: Mapped[str | None] = mapped_column(SID)
    previous_task_queue_sid: Mapped[str | None] = mapped_column(SID)
    # Milliseconds the task had waited (reservation.accepted, task.canceled) or, for
    # worker.activity.update, the milliseconds spent in the previous activity.
    wait_ms: Mapped[int | None] = mapped_column(BigInteger)
    queue_wait_ms: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_events_workspace_date", "workspace_sid", "event_date"),
        Index("ix_events_workspace_type_date", "workspace_sid", "event_type", "event_date"),
        # Partial: only events that have the sid (its readers ask for one, which implies NOT NULL). Five of a
        # call's eight events have no worker; a worker's activity change has no task, queue or workflow.
        *[Index(name, *columns, sqlite_where=text(f"{columns[0]} IS NOT NULL"),
                postgresql_where=text(f"{columns[0]} IS NOT NULL"))
          for name, columns in EVENT_SID_INDEXES.items()],
    )


class Timer(Base):
    """Something that must happen at `due_at`: a row, so that it survives a restart."""

    __tablename__ = "timers"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    workspace_sid: Mapped[str] = mapped_column(ForeignKey("workspaces.sid", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    subject_sid: Mapped[str] = mapped_column(SID)
    due_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        # No check on `kind`: applications register their own kinds (timers.register_timer).
        UniqueConstraint("kind", "subject_sid"),
        Index("ix_timers_due", "due_at"),
        # Never reuse a deleted row's id (SQLite would): a sweep that read a due timer must not
        # claim a different timer created since under the same id.
        {"sqlite_autoincrement": True},
    )


class OutboxMessage(Base):
    """A request that must leave after commit: an assignment callback or an event callback."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    workspace_sid: Mapped[str] = mapped_column(ForeignKey("workspaces.sid", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    # Event callbacks of one task are delivered in order: a message waits for older ones
    # with the same ordering key.
    ordering_key: Mapped[str | None] = mapped_column(String(34))
    reservation_sid: Mapped[str | None] = mapped_column(SID)
    url: Mapped[str] = mapped_column(Text)
    fallback_url: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(_in("kind", ("assignment", "event")), name="kind"),
        CheckConstraint(_in("status", ("pending", "dead")), name="status"),
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_ordering", "ordering_key", "id"),
        # Ids are never reused: a delivery that finishes late must not touch a newer message.
        {"sqlite_autoincrement": True},
    )


class Account(Base):
    """A tenant: it owns workspaces and authenticates with its auth token (or an API key)."""

    __tablename__ = "accounts"

    sid: Mapped[str] = mapped_column(SID, primary_key=True)
    friendly_name: Mapped[str] = mapped_column(String(64))
    # Kept retrievable, not hashed: it is the HMAC key that signs callbacks, as Twilio's is.
    auth_token: Mapped[str] = mapped_column(String(64))
    date_created: Mapped[datetime] = mapped_column(DateTime)


class ApiKey(Base):
    """An `SK...` key of an account; only a salted hash of its secret is stored."""

    __tablename__ = "api_keys"

    sid: Mapped[str] = mapped_column(SID, primary_key=True)
    account_sid: Mapped[str] = mapped_column(ForeignKey("accounts.sid", ondelete="CASCADE"), index=True)
    friendly_name: Mapped[str] = mapped_column(String(64))
    secret_salt: Mapped[str] = mapped_column(String(32))
    secret_hash: Mapped[str] = mapped_column(String(64))
    date_created: Mapped[datetime] = mapped_column(DateTime)
