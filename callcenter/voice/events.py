"""The engine's event callback: what the voice app must act on when routing changes without a webhook."""

from __future__ import annotations

import logging

from flask import Response

from callcenter.contact_center import ContactCenter
from callcenter.routing.models import Worker

from . import bp, flow
from .callers import voice_webhook
from .flow import form

log = logging.getLogger("callcenter.voice")


@bp.post("/events")
@voice_webhook
def events(center: ContactCenter):
    """Canceled task -> voicemail for its caller; ended reservation -> stop that agent's phone.

    A reservation also ends without the voice app: an agent texts "off" or rejects on the console
    while their phone rings. The phone must stop then too.
    """
    event_type = form("EventType")
    if form("WorkspaceSid") and form("WorkspaceSid") != center.workspace_sid:
        return Response(status=204)
    if event_type in ("workflow.timeout", "task.canceled"):
        flow.send_to_voicemail(center, form("TaskSid"))
    elif event_type in ("reservation.timeout", "reservation.canceled", "reservation.rescinded",
                        "reservation.rejected"):
        rang = flow.stop_ringing(center, form("ReservationSid"))
        if event_type == "reservation.timeout" and rang:
            # The engine moved the agent to the timeout activity: tell them how to come back.
            with flow.get_router().read() as session:
                worker = session.get(Worker, form("WorkerSid"))
            flow.tell_agent_how_to_come_back(center, worker)
    return Response(status=204)
