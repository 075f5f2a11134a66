"""The agent console: one agent's activity, their pending offer and their current call, and the buttons to change them.

Every action acts on the signed-in agent's own worker: a reservation or task of anyone else is 404.
Actions answer a fetch with the new snapshot (JSON) and a plain form post with a redirect back.
"""

from __future__ import annotations

from flask import current_app, flash, g, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from callcenter.contact_center import ContactCenter, current
from callcenter.database import get_router
from callcenter.routing.errors import IllegalState, InvalidParameter, NotFound, ReservationNotPending
from callcenter.routing.models import Reservation, Task, Worker
from callcenter.routing.reservations import reject_reservation_in, update_reservation
from callcenter.routing.workers import set_activity
from callcenter.voice import flow
from callcenter.voice.models import Call

from . import bp
from .auth import login_required, wants_json
from .snapshots import agent_snapshot, choosable_activities


def _center() -> ContactCenter:
    return current(current_app)


def _done(message: str):
    """After an action: the agent's new state for a fetch, the console again for a form post."""
    if wants_json():
        return jsonify(agent_snapshot(get_router(), _center(), g.user.worker_sid) | {"message": message})
    flash(message)
    return redirect(url_for("web.agent"))


@bp.get("/agent")
@login_required("agent")
def agent():
    state = agent_snapshot(get_router(), _center(), g.user.worker_sid)
    if state["worker"] is None:
        return render_template("error.html", status=404,
                               message="Your worker no longer exists. Ask a supervisor."), 404
    return render_template("agent.html", state=state)


@bp.get("/agent/state.json")
@login_required("agent")
def agent_state():
    return jsonify(agent_snapshot(get_router(), _center(), g.user.worker_sid))


@bp.post("/agent/activity")
@login_required("agent")
def change_activity():
    center = _center()
    activity_sid = request.form.get("activity_sid", "")
    with get_router().read() as session:
        allowed = {row.sid: row for row in choosable_activities(center, session)}
    activity = allowed.get(activity_sid)
    if activity is None:
        raise InvalidParameter(f"{activity_sid or 'An empty activity'} is not an activity you can choose")
    with get_router().transaction(center.workspace_sid) as tx:
        worker = tx.get(Worker, g.user.worker_sid, "Worker")
        # Going unavailable with an offer pending turns it down (as RejectPendingReservations does).
        set_activity(tx, worker, tx.activity(activity.sid), reject_pending=not activity.available)
        # Ready for the next caller (as a text of ON says): a call in wrap-up is done, and its slot free.
        ended = activity.available and flow.end_wrap_up(tx, worker, "wrap-up ended on the agent console")
    return _done(f"You are now {activity.friendly_name}." + (" Wrap-up ended." if ended else ""))


def _own_reservation(reservation_sid: str) -> tuple[Reservation, Task | None, Call | None]:
    with get_router().read() as session:
        reservation = session.get(Reservation, reservation_sid)
        if reservation is None or reservation.worker_sid != g.user.worker_sid:
            raise NotFound(f"Reservation {reservation_sid} was not found")
        task = session.get(Task, reservation.task_sid)
        call = session.scalar(select(Call).where(Call.task_sid == reservation.task_sid))
    return reservation, task, call


@bp.post("/agent/reservations/<reservation_sid>/accept")
@login_required("agent")
def accept(reservation_sid: str):
    center = _center()
    reservation, _, call = _own_reservation(reservation_sid)
    if reservation.reservation_status != "pending":
        raise ReservationNotPending(f"This offer is {reservation.reservation_status}; it can no longer be accepted")
    if call is None:
        update_reservation(get_router(), center.workspace_sid, reservation_sid, reservation_status="accepted",
                           worker_sid=g.user.worker_sid)
        return _done("Accepted.")
    caller = flow.accept(center, reservation_sid)
    if caller is None:
        raise ReservationNotPending("The caller is no longer waiting for you")
    # The caller stays in line until the agent's phone is answered: only then are they brought in, so a
    # phone that never answers sends them to the next agent rather than into an empty conference.
    leg = flow.leg_of(reservation_sid)
    if leg is None:
        return _done(flow.ring_after_console_accept(center, reservation_sid, caller))
    if leg.status == "answered":
        outcome = flow.bridge_caller(center, caller, reservation_sid)
        messages = {"connected": "Accepted: the caller is being connected.",
                    "requeued": "Accepted, but the caller could not be connected; they stay in line.",
                    "gone": "The caller hung up before you took the call."}
        return _done(messages[outcome])
    return _done("Accepted: answer your phone to talk to the caller.")


@bp.post("/agent/reservations/<reservation_sid>/reject")
@login_required("agent")
def reject(reservation_sid: str):
    center = _center()
    _own_reservation(reservation_sid)
    with get_router().transaction(center.workspace_sid) as tx:
        reservation = tx.get(Reservation, reservation_sid, "Reservation")
        if reservation.reservation_status != "pending":
            raise ReservationNotPending(f"This offer is {reservation.reservation_status}; it can no longer be rejected")
        # The agent stays in their activity; the caller goes to the next agent (not back to this one for now).
        reject_reservation_in(tx, reservation, activity_sid=None)
    flow.stop_ringing(center, reservation_sid)
    return _done("Rejected: the caller goes to the next agent.")


def _own_task(task_sid: str) -> Task:
    with get_router().read() as session:
        task = session.get(Task, task_sid)
        reservation = session.scalar(select(Reservation).where(
            Reservation.task_sid == task_sid, Reservation.worker_sid == g.user.worker_sid,
            Reservation.reservation_status.in_(("accepted", "wrapping"))))
    if task is None or reservation is None:
        raise NotFound(f"Task {task_sid} is not one of yours")
    return task


@bp.post("/agent/tasks/<task_sid>/wrap-up")
@login_required("agent")
def wrap_up(task_sid: str):
    task = _own_task(task_sid)
    if task.assignment_status != "assigned":
        raise IllegalState(f"This task is {task.assignment_status}, not in conversation")
    flow.end_conversation(_center(), task_sid)
    return _done("Wrapping up.")


@bp.post("/agent/tasks/<task_sid>/complete")
@login_required("agent")
def complete(task_sid: str):
    _own_task(task_sid)
    flow.finish_task_now(_center(), task_sid)
    return _done("Done.")

