"""What the agent console and the dashboard show, read in one go: the pages render it, and re-fetch it as JSON
whenever a live notice arrives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select

from callcenter.contact_center import ContactCenter
from callcenter.routing import Router
from callcenter.routing.models import Activity, Event, Reservation, Task, TaskQueue, TaskQueueMember, Timer, Worker
from callcenter.voice.models import AgentLeg, Call

from .chart import day_chart

WAITING = ("pending", "reserved")
HELD = ("pending", "accepted", "wrapping")
# Attributes the voice app sets on every call's task; what is left are the caller's menu choices.
CALL_ATTRIBUTES = ("type", "call_sid", "from", "to", "direction")
MISSED_CALLS_SHOWN = 50
WAITING_CALLS_SHOWN = 50


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") + "Z" if moment is not None else None


def clock_time(moment: datetime, zone: ZoneInfo) -> str:
    """A stored (naive UTC) moment as the contact center's wall clock shows it, with the zone's abbreviation
    (the hour the clocks go back happens twice): "14:03 CET"."""
    return moment.replace(tzinfo=UTC).astimezone(zone).strftime("%H:%M %Z")


def seconds_between(start: datetime | None, end: datetime) -> int | None:
    return max(0, int((end - start).total_seconds())) if start is not None else None


def choosable_activities(center: ContactCenter, session) -> list[Activity]:
    """The activities an agent picks themselves: all but the ones the call flow sets (on a call, wrap-up)."""
    automatic = {center.role_sids.get("busy"), center.role_sids.get("wrap_up")}
    rows = session.scalars(select(Activity).where(Activity.workspace_sid == center.workspace_sid)
                           .order_by(Activity.date_created, Activity.friendly_name)).all()
    return [row for row in rows if row.sid not in automatic]


def _task_view(task: Task, call: Call | None, queue_names: dict[str, str]) -> dict[str, Any]:
    attributes = json.loads(task.attributes or "{}")
    choices = {key: value for key, value in attributes.items() if key not in CALL_ATTRIBUTES}
    return {
        "sid": task.sid,
        "status": task.assignment_status,
        "caller": attributes.get("from") or (call.from_number if call is not None else None),
        "choices": choices,
        "queue": queue_names.get(task.task_queue_sid or ""),
        "is_call": call is not None,
        "date_created": iso(task.date_created),
        "date_answered": iso(call.date_answered if call is not None else task.date_assigned),
    }


# -- the agent console -----------------------------------------------------------------------------

def agent_snapshot(router: Router, center: ContactCenter, worker_sid: str) -> dict[str, Any]:
    """One agent's activity, the activities they may choose, their pending offer and their current task."""
    now = router.clock.now()
    with router.read() as session:
        worker = session.get(Worker, worker_sid)
        if worker is None or worker.workspace_sid != center.workspace_sid:
            return {"worker": None, "now": iso(now)}
        activity = session.get(Activity, worker.activity_sid)
        queue_names = _queue_names(session, center)
        offer = current = None
        for reservation in session.scalars(
                select(Reservation).where(Reservation.worker_sid == worker_sid,
                                          Reservation.reservation_status.in_(HELD))
                .order_by(Reservation.date_created)):
            task = session.get(Task, reservation.task_sid)
            if task is None:
                continue
            call = session.scalar(select(Call).where(Call.task_sid == task.sid))
            view = _task_view(task, call, queue_names) | {"reservation_sid": reservation.sid,
                                                          "reservation_status": reservation.reservation_status}
            if reservation.reservation_status == "pending" and offer is None:
                due = session.scalar(select(Timer.due_at).where(Timer.kind == "reservation_timeout",
                                                                Timer.subject_sid == reservation.sid))
                # A phone rings for ring_seconds, then Twilio gives up (no-answer): the chance ends then, well
                # before the reservation's timeout (which leaves room for the answer and the key press).
                leg = session.scalar(select(AgentLeg).where(AgentLeg.reservation_sid == reservation.sid))
                if leg is not None and leg.status in ("dialing", "ringing"):
                    rings_until = leg.date_created + timedelta(seconds=center.voice.ring_seconds)
                    due = min(due, rings_until) if due else rings_until
                offer = view | {"expires_at": iso(due), "seconds_left": seconds_between(now, due) if due else None}
            elif reservation.reservation_status != "pending" and current is None:
                current = view
        waiting = session.scalar(
            select(func.count(Task.sid)).join(TaskQueueMember, and_(TaskQueueMember.task_queue_sid == Task.task_queue_sid,
                                                                    TaskQueueMember.worker_sid == worker_sid))
            .where(Task.assignment_status.in_(WAITING)))
        activities = [{"sid": row.sid, "name": row.friendly_name, "available": row.available,
                       "current": row.sid == worker.activity_sid} for row in choosable_activities(center, session)]
    return {
        "now": iso(now),
        "worker": {"sid": worker.sid, "name": worker.friendly_name, "activity_sid": worker.activity_sid,
                   "activity": activity.friendly_name if activity else None, "available": worker.available,
                   "since": iso(worker.date_status_changed),
                   "seconds_in_activity": seconds_between(worker.date_status_changed, now)},
        "activities": activities,
        "reservation": offer,
        "task": current,
        "waiting_in_my_queues": waiting or 0,
    }


def _queue_names(session, center: ContactCenter) -> dict[str, str]:
    return dict(session.execute(select(TaskQueue.sid, TaskQueue.friendly_name)
                                .where(TaskQueue.workspace_sid == center.workspace_sid)).all())


# -- the supervisor dashboard ----------------------------------------------------------------------

@dataclass
class QueueDay:
    """Today's calls of one queue, as the voice app recorded them."""

    answered: int = 0
    abandoned: int = 0
    missed: int = 0
    answered_in_time: int = 0
    answer_seconds_total: float = 0.0

    @property
    def offered(self) -> int:
        return self.answered + self.abandoned + self.missed

    def numbers(self) -> dict[str, Any]:
        return {
            "answered": self.answered, "abandoned": self.abandoned, "missed": self.missed,
            "average_speed_of_answer": round(self.answer_seconds_total / self.answered) if self.answered else None,
            "service_level": round(100 * self.answered_in_time / self.offered) if self.offered else None,
        }


def today(now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The contact center's day around `now`: from its local midnight to the next, as naive UTC (the form times
    are stored in). 24 hours long, or 23 and 25 on the days the clocks change."""
    local_date = now.replace(tzinfo=UTC).astimezone(zone).date()

    def midnight(day) -> datetime:
        # A midnight the clocks skip (a few zones change at 00:00) resolves to the moment the day begins.
        return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC).replace(tzinfo=None)

    return midnight(local_date), midnight(local_date + timedelta(days=1))


def dashboard_snapshot(router: Router, center: ContactCenter, service_level_seconds: int) -> dict[str, Any]:
    """Per queue, per agent, today's missed calls and the day's chart, as of now; "today" is the contact
    center's (`[workspace] timezone`)."""
    now = router.clock.now()
    zone = center.zone
    day, day_end = today(now, zone)
    with router.read() as session:
        queues = session.scalars(select(TaskQueue).where(TaskQueue.workspace_sid == center.workspace_sid)
                                 .order_by(TaskQueue.friendly_name)).all()
        calls = session.scalars(select(Call).where(Call.workspace_sid == center.workspace_sid,
                                                   Call.date_created >= day).order_by(Call.date_created)).all()
        queue_of_task = _queue_of_tasks(session, center.workspace_sid, day)
        per_queue = {queue.sid: QueueDay() for queue in queues}
        for call in calls:
            tally = per_queue.get(queue_of_task.get(call.task_sid or ""))
            if tally is None or call.outcome not in ("answered", "abandoned", "missed"):
                continue  # still waiting, hung up in the menu, or failed before reaching a queue
            if call.outcome == "answered":
                tally.answered += 1
                waited = (call.date_answered - (call.date_enqueued or call.date_created)).total_seconds()
                tally.answer_seconds_total += waited
                tally.answered_in_time += waited <= service_level_seconds
            else:
                setattr(tally, call.outcome, getattr(tally, call.outcome) + 1)
        queue_rows = [_queue_row(session, queue, now) | per_queue[queue.sid].numbers() for queue in queues]
        agents = _agent_rows(session, center, now)
        waiting_calls = _waiting_calls(session, center, now)
        activities = [{"sid": row.sid, "name": row.friendly_name, "available": row.available}
                      for row in session.scalars(select(Activity).where(Activity.workspace_sid == center.workspace_sid)
                                                 .order_by(Activity.date_created))]
    missed = [{"call_sid": call.call_sid, "from": call.from_number, "date": iso(call.date_created),
               "time": clock_time(call.date_created, zone),
               "queue": next((q.friendly_name for q in queues if q.sid == queue_of_task.get(call.task_sid or "")), None),
               "recording_url": call.recording_url, "recording_duration": call.recording_duration,
               "transcription": call.transcription}
              for call in reversed(calls) if call.outcome == "missed"][:MISSED_CALLS_SHOWN]
    total = QueueDay()
    for tally in per_queue.values():
        for name in ("answered", "abandoned", "missed", "answered_in_time", "answer_seconds_total"):
            setattr(total, name, getattr(total, name) + getattr(tally, name))
    return {
        "now": iso(now),
        "timezone": center.spec.timezone,
        "day_started": iso(day),
        "service_level_seconds": service_level_seconds,
        "queues": queue_rows,
        "totals": total.numbers() | {"waiting": sum(row["waiting"] for row in queue_rows)},
        "agents": agents,
        "activities": activities,
        "missed_calls": missed,
        "waiting_calls": waiting_calls,
        "chart_svg": day_chart(calls, day, day_end, now, service_level_seconds, zone),
    }


def _waiting_calls(session, center: ContactCenter, now: datetime) -> list[dict[str, Any]]:
    """The longest-waiting calls first, each with a link to why it still waits."""
    queue_names = _queue_names(session, center)
    # A task's virtual start time is when its caller joined the line: a caller sent back in line after a failed
    # transfer gets a new task that keeps it (flow.requeue), and their wait goes on counting from it.
    rows = session.execute(
        select(Task.sid, Task.attributes, Task.task_queue_sid, Task.assignment_status, Task.virtual_start_time)
        .where(Task.workspace_sid == center.workspace_sid, Task.assignment_status.in_(WAITING))
        .order_by(Task.virtual_start_time, Task.sid).limit(WAITING_CALLS_SHOWN)).all()
    return [{"sid": sid, "caller": json.loads(attributes or "{}").get("from"),
             "queue": queue_names.get(queue_sid or ""), "status": status,
             "waited": seconds_between(created, now)}
            for sid, attributes, queue_sid, status, created in rows]


def _queue_of_tasks(session, workspace_sid: str, since: datetime) -> dict[str, str]:
    """The last queue each of today's tasks entered (events outlive the tasks, which are purged when done)."""
    rows = session.execute(select(Event.task_sid, Event.task_queue_sid)
                           .where(Event.workspace_sid == workspace_sid, Event.event_type == "task-queue.entered",
                                  Event.event_date >= since - timedelta(hours=1))
                           .order_by(Event.id)).all()
    return {task_sid: queue_sid for task_sid, queue_sid in rows if task_sid}


def _queue_row(session, queue: TaskQueue, now: datetime) -> dict[str, Any]:
    waiting, oldest = session.execute(
        select(func.count(Task.sid), func.min(Task.virtual_start_time))  # since the caller joined the line
        .where(Task.task_queue_sid == queue.sid, Task.assignment_status.in_(WAITING))).one()
    # Free: in an available activity and holding no reservation. An agent whose phone rings for another call
    # is in an available activity too, but cannot take this one.
    eligible, available = session.execute(
        select(func.count(Worker.sid),
               func.count(Worker.sid).filter(Worker.available.is_(True), Worker.active_reservations == 0))
        .join(TaskQueueMember, TaskQueueMember.worker_sid == Worker.sid)
        .where(TaskQueueMember.task_queue_sid == queue.sid)).one()
    return {"sid": queue.sid, "name": queue.friendly_name, "target_workers": queue.target_workers,
            "waiting": waiting, "longest_wait": seconds_between(oldest, now) if oldest else None,
            "eligible_agents": eligible, "available_agents": available}


def _agent_rows(session, center: ContactCenter, now: datetime) -> list[dict[str, Any]]:
    activities = dict(session.execute(select(Activity.sid, Activity.friendly_name)
                                      .where(Activity.workspace_sid == center.workspace_sid)).all())
    queue_names = _queue_names(session, center)
    held: dict[str, tuple[Reservation, Task]] = {}
    for reservation, task in session.execute(
            select(Reservation, Task).join(Task, Task.sid == Reservation.task_sid)
            .where(Reservation.workspace_sid == center.workspace_sid, Reservation.reservation_status.in_(HELD))
            .order_by(Reservation.date_created)):
        # An accepted task says more than a pending offer: it wins.
        if reservation.worker_sid not in held or reservation.reservation_status != "pending":
            held[reservation.worker_sid] = (reservation, task)
    rows = []
    for worker in session.scalars(select(Worker).where(Worker.workspace_sid == center.workspace_sid)
                                  .order_by(Worker.friendly_name)):
        task_view = None
        if worker.sid in held:
            reservation, task = held[worker.sid]
            attributes = json.loads(task.attributes or "{}")
            task_view = {"sid": task.sid, "status": reservation.reservation_status, "caller": attributes.get("from"),
                         "queue": queue_names.get(reservation.task_queue_sid or "")}
        rows.append({"sid": worker.sid, "name": worker.friendly_name, "activity_sid": worker.activity_sid,
                     "activity": activities.get(worker.activity_sid), "available": worker.available,
                     "seconds_in_activity": seconds_between(worker.date_status_changed, now), "task": task_view})
    return rows
