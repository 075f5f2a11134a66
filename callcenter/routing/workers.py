"""Workers, their activity, and their WorkerChannels (capacity and availability per TaskChannel)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, event, func, inspect, select, update
from sqlalchemy.orm.attributes import set_committed_value

from . import statements, validation
from .errors import DuplicateName, IllegalState, InvalidParameter, NotFound
from .events import emit
from .models import Activity, Reservation, TaskChannel, Worker, WorkerChannel
from .queues import refresh_worker_memberships
from .router import Router, Tx
from .sids import new_sid

MAX_WORKERS = 15_000
MAX_CAPACITY = 50
_UNSET: Any = object()


def create_worker(router: Router, workspace_sid: str, *, friendly_name: str, activity_sid: str | None = None,
                  attributes: str | dict | None = None) -> Worker:
    """Create a worker in the given (or the workspace's default) activity, with one channel per TaskChannel."""
    validation.friendly_name(friendly_name)
    attributes = validation.attributes(attributes if attributes is not None else "{}")
    with router.transaction(workspace_sid) as tx:
        count = tx.session.scalar(select(func.count()).where(Worker.workspace_sid == workspace_sid))
        if count >= MAX_WORKERS:
            raise InvalidParameter(f"A workspace has at most {MAX_WORKERS} workers")
        _unique_worker_name(tx, friendly_name)
        activity_sid = activity_sid or tx.workspace.default_activity_sid
        if activity_sid is None:
            raise InvalidParameter("ActivitySid is required: the workspace has no default activity")
        activity = tx.activity(activity_sid)
        worker = Worker(
            sid=new_sid("WK"), workspace_sid=workspace_sid, friendly_name=friendly_name,
            name_key=friendly_name.casefold(), attributes=attributes, activity_sid=activity.sid,
            available=activity.available, active_reservations=0, version=1,
            date_status_changed=tx.now, date_created=tx.now, date_updated=tx.now,
        )
        tx.session.add(worker)
        tx.session.flush()
        for channel_sid in tx.session.scalars(select(TaskChannel.sid).where(TaskChannel.workspace_sid == workspace_sid)):
            tx.session.add(WorkerChannel(sid=new_sid("WC"), workspace_sid=workspace_sid, worker_sid=worker.sid,
                                         task_channel_sid=channel_sid, capacity=1, available=True,
                                         reserved_tasks=0, assigned_tasks=0, idle_since=tx.now,
                                         worker_available=activity.available,
                                         date_created=tx.now, date_updated=tx.now))
        tx.session.flush()
        tx.forget_channels()
        refresh_worker_memberships(tx, worker)
        emit(tx, "worker.created", resource=worker, worker=worker, description=f"Worker {friendly_name} created")
        if worker.available:
            tx.wake_worker(worker)
        return worker


def update_worker(
    router: Router,
    workspace_sid: str,
    worker_sid: str,
    *,
    friendly_name: str | None = None,
    activity_sid: str | None = None,
    attributes: str | dict | None = None,
    reject_pending_reservations: bool = False,
    if_match: str | None = None,
) -> Worker:
    """Change a worker's name, attributes or activity (one transaction, one version bump)."""
    if friendly_name is not None:
        validation.friendly_name(friendly_name)
    if attributes is not None:
        attributes = validation.attributes(attributes)
    with router.transaction(workspace_sid) as tx:
        worker = tx.get(Worker, worker_sid, "Worker")
        check_version(worker, if_match)
        changed = False
        if friendly_name is not None and friendly_name != worker.friendly_name:
            if friendly_name.casefold() != worker.name_key:
                _unique_worker_name(tx, friendly_name)
            worker.friendly_name, worker.name_key = friendly_name, friendly_name.casefold()
            changed = True
        if attributes is not None and attributes != worker.attributes:
            worker.attributes = attributes
            refresh_worker_memberships(tx, worker)
            raise_version(tx, worker)
            emit(tx, "worker.attributes.update", resource=worker, worker=worker,
                 description=f"Worker {worker.friendly_name} attributes updated")
            # New attributes may make the worker eligible for waiting tasks.
            tx.wake_worker(worker)
            changed = True
        if activity_sid is not None:
            changed |= set_activity(tx, worker, tx.activity(activity_sid), reject_pending=reject_pending_reservations)
        elif reject_pending_reservations:
            raise InvalidParameter("RejectPendingReservations needs an ActivitySid of an unavailable activity")
        if changed:
            raise_version(tx, worker)
        return worker


def raise_version(tx: Tx, worker: Worker) -> None:
    """The worker changed: its version (its ETag, and `worker_version` in the events of the change, so it is
    raised before they are written) goes up once per transaction, whether the API or the engine changed it."""
    if worker.sid not in tx.versioned_workers:
        tx.versioned_workers.add(worker.sid)
        worker.version += 1
    worker.date_updated = tx.now


def delete_worker(router: Router, workspace_sid: str, worker_sid: str, *, if_match: str | None = None) -> None:
    """Delete a worker that holds no pending or accepted reservation."""
    with router.transaction(workspace_sid) as tx:
        worker = tx.get(Worker, worker_sid, "Worker")
        check_version(worker, if_match)
        if worker.active_reservations:
            raise IllegalState(f"Worker {worker.friendly_name} has {worker.active_reservations} active "
                               "reservation(s); finish or reject them first")
        # Its time in its last activity ends here: the cumulative statistics count it (statistics._stints).
        spent_ms = int((tx.now - worker.date_status_changed).total_seconds() * 1000)
        emit(tx, "worker.deleted", resource=worker, worker=worker, description=f"Worker {worker.friendly_name} deleted",
             wait_ms=spent_ms)
        tx.session.delete(worker)


def set_activity(tx: Tx, worker: Worker, activity: Activity, *, reject_pending: bool = False,
                 wake: bool = True, keep_pending: bool = False) -> bool:
    """Move `worker` to `activity` with its event; returns False when it was already there.

    Moving to an unavailable activity while reservations are pending needs `reject_pending`
    (they are rejected); moving between available activities keeps them. `keep_pending` is for
    the engine's own move to a queue's reservation activity, which the pending offer itself causes.
    """
    if activity.sid == worker.activity_sid:
        return False
    if not activity.available and not keep_pending:
        pending = list(tx.session.scalars(
            select(Reservation).where(Reservation.worker_sid == worker.sid, Reservation.reservation_status == "pending")
        ))
        if pending and not reject_pending:
            raise IllegalState(
                f"Worker {worker.friendly_name} has {len(pending)} pending reservation(s); accept or reject them, "
                "or pass RejectPendingReservations=true"
            )
        if pending:
            from .reservations import reject_reservation_in

            for reservation in pending:
                # The worker is about to move anyway: keep the activity they asked for.
                reject_reservation_in(tx, reservation, activity_sid=None, restore_activity=False)
    elif reject_pending:
        raise InvalidParameter("RejectPendingReservations is only valid with an unavailable activity")
    previous = tx.activity(worker.activity_sid)
    spent_ms = int((tx.now - worker.date_status_changed).total_seconds() * 1000)
    became_available = activity.available and not worker.available
    worker.activity_sid = activity.sid
    worker.available = activity.available
    worker.date_status_changed = tx.now
    raise_version(tx, worker)
    if became_available:
        _loaded_channels_idle_from_now(tx, worker)
    emit(tx, "worker.activity.update", resource=worker, worker=worker,
         description=f"Worker {worker.friendly_name} updated to {activity.friendly_name} Activity",
         data={
             "worker_previous_activity_sid": previous.sid,
             "worker_previous_activity_name": previous.friendly_name,
             "worker_time_in_previous_activity": str(spent_ms // 1000),
             "worker_time_in_previous_activity_ms": str(spent_ms),
         },
         wait_ms=spent_ms)
    if wake and worker.available:
        tx.wake_worker(worker)
    return True


_CHANNELS = WorkerChannel.__table__
_NOW_UNAVAILABLE = (update(_CHANNELS).where(_CHANNELS.c.worker_sid == bindparam("of_worker"))
                    .values(worker_available=False))
# A worker who becomes available is idle from that moment on every channel.
_NOW_AVAILABLE = (update(_CHANNELS).where(_CHANNELS.c.worker_sid == bindparam("of_worker"))
                  .values(worker_available=True, idle_since=bindparam("idle_since")))


@event.listens_for(Worker, "after_update")
def _copy_availability_to_channels(_mapper: Any, connection: Any, worker: Worker) -> None:
    """Keep `worker_channels.worker_available` equal to `workers.available`, whatever code changed it, and
    start every channel's idle time when the worker becomes available (`set_activity` stamps the moment
    in `date_status_changed`).

    Core on the flush's connection, one statement: the channels need not be loaded, and nothing reads the
    copy but the index.
    """
    if inspect(worker).attrs.available.history.has_changes():
        if worker.available:
            statements.run(connection, _NOW_AVAILABLE, {"of_worker": worker.sid, "idle_since": worker.date_status_changed})
        else:
            statements.run(connection, _NOW_UNAVAILABLE, {"of_worker": worker.sid})


_CHANNELS_OF = statements.select_rows_of(WorkerChannel).where(WorkerChannel.worker_sid == bindparam("worker_sid"))


def _loaded_channels_idle_from_now(tx: Tx, worker: Worker) -> None:
    """Channels of a worker who just became available, already loaded in this transaction, are told the
    idle time that `_copy_availability_to_channels` writes for every channel at flush."""
    for channel in tx.session.identity_map.values():
        if isinstance(channel, WorkerChannel) and channel.worker_sid == worker.sid:
            set_committed_value(channel, "idle_since", tx.now)


def channels_of(tx: Tx, worker: Worker) -> list[WorkerChannel]:
    """Every channel of `worker`, loaded once per transaction: later calls return the same session
    objects, whose values include this transaction's changes (channels change only through them)."""
    channels = tx.loaded_channels(worker.sid)
    if channels is None:
        channels = [row[0] for row in statements.load_rows(tx.session, _CHANNELS_OF, {"worker_sid": worker.sid},
                                                            (WorkerChannel,))]
        tx.remember_channels(worker.sid, channels)
    return channels


_WORKER_CHANNEL = statements.select_rows_of(WorkerChannel).where(
    WorkerChannel.worker_sid == bindparam("worker_sid"), WorkerChannel.task_channel_sid == bindparam("channel_sid"))


def worker_channel(tx: Tx, worker: Worker, task_channel_sid: str) -> WorkerChannel:
    channel = tx.remembered_channel(worker.sid, task_channel_sid)
    if channel is not None:
        return channel
    # The lookup reads no column that pending changes could alter, so it need not flush them first
    # (flushing here split one UPDATE of a task or worker into two).
    rows = statements.load_rows(tx.session, _WORKER_CHANNEL, {"worker_sid": worker.sid, "channel_sid": task_channel_sid},
                                (WorkerChannel,), flush=False)
    channel = rows[0][0] if rows else None
    if channel is None:
        raise NotFound(f"Worker {worker.sid} has no channel {task_channel_sid}")
    tx.remember_channel(channel)
    return channel


def update_worker_channel(router: Router, workspace_sid: str, worker_sid: str, channel: str, *,
                          capacity: int | str | None = None, available: Any = None) -> WorkerChannel:
    """Change a worker's capacity or availability on one channel (`channel`: WC/TC sid or unique name)."""
    if capacity is not None:
        capacity = validation.integer(capacity, "Capacity", minimum=0, maximum=MAX_CAPACITY)
    with router.transaction(workspace_sid) as tx:
        worker = tx.get(Worker, worker_sid, "Worker")
        worker_ch = find_worker_channel(tx, worker, channel)
        task_channel = tx.channel(worker_ch.task_channel_sid)
        data = {"task_channel_sid": task_channel.sid, "task_channel_unique_name": task_channel.unique_name}
        if capacity is not None and capacity != worker_ch.capacity:
            previous = worker_ch.capacity
            worker_ch.capacity = capacity
            worker_ch.date_updated = tx.now
            emit(tx, "worker.capacity.update", resource=worker, worker=worker,
                 description=f"Worker {worker.friendly_name} capacity on {task_channel.unique_name} set to {capacity}",
                 data={**data, **_channel_fields(worker_ch), "worker_channel_previous_capacity": str(previous)})
        if available is not None:
            flag = validation.boolean(available, "Available")
            if flag != worker_ch.available:
                worker_ch.available = flag
                worker_ch.date_updated = tx.now
                emit(tx, "worker.channel.availability.update", resource=worker, worker=worker,
                     description=f"Worker {worker.friendly_name} channel {task_channel.unique_name} "
                                 f"{'available' if flag else 'unavailable'}",
                     data={**data, **_channel_fields(worker_ch)})
        if worker.available:
            tx.wake_worker(worker)
        return worker_ch


def find_worker_channel(tx: Tx, worker: Worker, channel: str) -> WorkerChannel:
    if isinstance(channel, str) and channel.startswith("WC"):
        found = tx.session.get(WorkerChannel, channel)
        if found is None or found.worker_sid != worker.sid:
            raise NotFound(f"WorkerChannel {channel} not found")
        return found
    from .workspaces import find_task_channel

    return worker_channel(tx, worker, find_task_channel(tx, channel).sid)


def _channel_fields(channel: WorkerChannel) -> dict[str, str]:
    return {
        "worker_channel_available": str(channel.available).lower(),
        "worker_channel_available_capacity": str(max(0, channel.capacity - channel.reserved_tasks)),
        "worker_channel_task_count": str(channel.assigned_tasks),
    }


def available_capacity_percentage(channel: WorkerChannel) -> int:
    if channel.capacity <= 0:
        return 0
    return max(0, (channel.capacity - channel.reserved_tasks) * 100 // channel.capacity)


def check_version(resource: Any, if_match: str | None) -> None:
    """Optimistic concurrency: `If-Match` must name the resource's current version (its ETag), with HTTP's
    If-Match semantics (RFC 9110): `*` matches any existing resource, and a list matches if any of its tags does
    (a weak tag `W/"3"` compares by its value)."""
    if if_match is None:
        return
    from .errors import PreconditionFailed

    tags = [tag.strip() for tag in if_match.split(",")]
    if "*" in tags or str(resource.version) in (tag.removeprefix("W/").strip('"') for tag in tags):
        return
    raise PreconditionFailed(f"The resource has changed: its version is {resource.version}, "
                             f"If-Match asked for {if_match}")


def _unique_worker_name(tx: Tx, name: str) -> None:
    if tx.session.scalar(select(Worker.sid).where(Worker.workspace_sid == tx.workspace.sid,
                                                  Worker.name_key == name.casefold())):
        raise DuplicateName(f"A worker named {name!r} already exists in this workspace")
