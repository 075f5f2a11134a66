"""An agent's text, read as a command and carried out on their worker: one transaction, one short answer.

`on`/`available`, `off`/`offline`, `break`, `status`, `help`, or the name of any activity the agent may
choose: every activity except the ones the call flow sets itself (the `busy` and `wrap_up` roles).
Case, spacing and a trailing full stop or exclamation mark do not matter. Commands come before
activity names, so an activity called "Help" is reached by the `help` command, not chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select

from callcenter.contact_center import ContactCenter
from callcenter.database import get_router
from callcenter.routing import RoutingError, Tx
from callcenter.routing.models import Activity, Reservation, Task, TaskQueueMember, Worker
from callcenter.routing.workers import set_activity
from callcenter.voice import flow

from .directory import phone_of
from .models import SmsMessage

# Roles whose activities the app moves agents into and out of; an agent cannot pick them.
SYSTEM_ROLES = ("busy", "wrap_up")
ROLE_WORDS = {"on": "available", "available": "available", "off": "offline", "offline": "offline", "break": "break"}
WAITING = ("pending", "reserved")
# Twilio retries a webhook within minutes; a day of MessageSids is plenty.
REMEMBER_MESSAGES = timedelta(days=1)


class UnknownSender(Exception):
    """The text's number is not (or no longer) the registered phone of this worker."""


@dataclass(frozen=True)
class Outcome:
    reply: str
    duplicate: bool = False


def normalized(text: str) -> str:
    return " ".join(text.split()).casefold().rstrip(".!")


def run(center: ContactCenter, *, message_sid: str, worker_sid: str, sender: str, body: str) -> Outcome:
    """Carry out one agent's text (once per MessageSid); engine errors become the answer, not an exception."""
    router = get_router()
    try:
        with router.transaction(center.workspace_sid) as tx:
            seen = tx.session.get(SmsMessage, message_sid) if message_sid else None
            if seen is not None:
                return Outcome(seen.reply, duplicate=True)
            worker = tx.session.get(Worker, worker_sid)
            if worker is None or worker.workspace_sid != center.workspace_sid or phone_of(worker.attributes) != sender:
                raise UnknownSender(sender)
            reply = answer(tx, center, worker, body)
            if message_sid:
                tx.session.execute(delete(SmsMessage).where(SmsMessage.date_created < tx.now - REMEMBER_MESSAGES))
                tx.session.add(SmsMessage(message_sid=message_sid, workspace_sid=center.workspace_sid,
                                          worker_sid=worker.sid, body=body[:160], reply=reply, date_created=tx.now))
            return Outcome(reply)
    except RoutingError as err:
        # The transaction rolled back: nothing changed, and a retry may try again.
        return Outcome(f"Sorry, that did not work: {err.message}")


def answer(tx: Tx, center: ContactCenter, worker: Worker, body: str) -> str:
    """What the text asks, done inside `tx`; returns the SMS to send back (one segment: under 160 characters)."""
    command = normalized(body)
    activities = tx.config.activities
    current = activities[worker.activity_sid]
    if command in ("help", ""):  # "": a picture with no text
        return help_text(center, activities)
    if command == "status":
        spent = tx.now - worker.date_status_changed
        parts = [f"You are {current.friendly_name} (for {duration(spent)}).", waiting_text(tx, worker)]
        if pending_reservations(tx, worker):
            parts.append("A call is ringing for you.")
        return " ".join(parts)
    activity = chosen_activity(center, activities, command)
    if activity is None:
        system = {normalized(activities[sid].friendly_name): activities[sid].friendly_name
                  for role, sid in center.role_sids.items() if role in SYSTEM_ROLES and sid in activities}
        # Short, and without echoing the text: an emoji or a curly quote would make the reply three segments.
        if command in system:
            return help_text(center, activities, apology=f"{system[command]} is set automatically.", brief=True)
        return help_text(center, activities, apology="Not a command.", brief=True)
    if activity.sid == worker.activity_sid:
        text = f"You are already {activity.friendly_name}."
        if activity.available and end_wrap_up(tx, worker):
            text += " Wrap-up ended."
        return f"{text} {waiting_text(tx, worker)}" if activity.available else text
    # Going unavailable with a call ringing: decline it, as RejectPendingReservations does.
    rejected = 0 if activity.available else pending_reservations(tx, worker)
    set_activity(tx, worker, activity, reject_pending=bool(rejected))  # raises the worker's version
    parts = [f"You are now {activity.friendly_name}."]
    if activity.available and end_wrap_up(tx, worker):
        parts.append("Wrap-up ended.")  # ready for the next caller: the call's slot is free now
    if rejected:
        parts.append("The call ringing for you was declined and goes to another agent." if rejected == 1
                     else f"The {rejected} calls ringing for you were declined and go to other agents.")
    if activity.available:
        parts.append(waiting_text(tx, worker))
    return " ".join(parts)


def chosen_activity(center: ContactCenter, activities: dict[str, Activity], command: str) -> Activity | None:
    """The activity a command names, among those an agent may choose."""
    choosable = choosable_activities(center, activities)
    role = ROLE_WORDS.get(command)
    if role and center.role_sids.get(role) in activities and activities[center.role_sids[role]] in choosable:
        return activities[center.role_sids[role]]
    return next((activity for activity in choosable if normalized(activity.friendly_name) == command), None)


def choosable_activities(center: ContactCenter, activities: dict[str, Activity]) -> list[Activity]:
    system = {center.role_sids.get(role) for role in SYSTEM_ROLES}
    # Available activities first, then by name: the order the help text lists them in.
    return sorted((activity for sid, activity in activities.items() if sid not in system),
                  key=lambda activity: (not activity.available, activity.friendly_name.casefold()))


def end_wrap_up(tx: Tx, worker: Worker) -> int:
    return flow.end_wrap_up(tx, worker, "wrap-up ended by the agent's text")


def help_text(center: ContactCenter, activities: dict[str, Activity], apology: str = "", *, brief: bool = False) -> str:
    words = ["ON", "OFF"] + (["BREAK"] if center.role_sids.get("break") in activities else [])
    names = ", ".join(activity.friendly_name for activity in choosable_activities(center, activities))
    system = [activities[center.role_sids[role]].friendly_name for role in SYSTEM_ROLES
              if center.role_sids.get(role) in activities]
    text = f"Text {', '.join(words)}, STATUS, or one of: {names}."
    if system and not brief:
        text += f" {' and '.join(system)} {'is' if len(system) == 1 else 'are'} set automatically."
    return f"{apology} {text}" if apology else text


def waiting_text(tx: Tx, worker: Worker) -> str:
    count = callers_waiting(tx, worker)
    if count == 0:
        return "No callers are waiting."
    return "1 caller is waiting." if count == 1 else f"{count} callers are waiting."


def callers_waiting(tx: Tx, worker: Worker) -> int:
    """Tasks not yet answered in the queues this worker belongs to (the engine's queue membership)."""
    return tx.session.scalar(
        select(func.count(Task.sid))
        .join(TaskQueueMember, TaskQueueMember.task_queue_sid == Task.task_queue_sid)
        .where(TaskQueueMember.worker_sid == worker.sid, Task.assignment_status.in_(WAITING))
    ) or 0


def pending_reservations(tx: Tx, worker: Worker) -> int:
    return tx.session.scalar(select(func.count(Reservation.sid)).where(
        Reservation.worker_sid == worker.sid, Reservation.reservation_status == "pending")) or 0


def duration(spent: timedelta) -> str:
    seconds = max(0, int(spent.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
