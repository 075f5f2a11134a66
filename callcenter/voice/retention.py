"""How long the voice app keeps what it remembers of calls.

`voice_calls` is the contact center's call history: who called, when, how the call ended, and the
voicemail's recording URL and transcription. It is kept for ever unless `CALL_RETENTION_DAYS` is set:
callers' numbers and what they said are personal data, which a privacy policy may keep for a bounded
time. A call goes once it started longer ago than that and its task is gone (a task that still exists
is a call still being handled), and the agent legs of that call go with it in the same transaction.
The recordings themselves stay in the Twilio account, under its own retention.

`voice_agent_legs` (one per agent rung) and `voice_instructions` (one per voice instruction given for a
reservation) are working state: while their reservation exists they make retried callbacks and webhooks
act once. When the reservation is gone (its task is deleted minutes after it ended) nothing reads them
any more; they go once older than the shorter of the event retention and the call retention (30 days
with the defaults), so that they never outlive their call, and never go before a late webhook of theirs
could arrive. With both retentions off (`0`), everything is kept.

The sweeper runs `purge_call_records` with the engine's purges, in transactions of a hundred rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, exists, or_, select

from callcenter.routing.models import Reservation, Task
from callcenter.routing.retention import PURGE_BATCH, delete_in_batches, rows_deleted_by
from callcenter.routing.router import Router, Tx

from .instructions import VoiceInstruction
from .models import AgentLeg, Call

_DELETE = {"synchronize_session": False}


def purge_call_records(router: Router, call_retention: timedelta | None, *, batch: int = PURGE_BATCH,
                       max_batches: int = 50) -> int:
    """Delete the calls, agent legs and voice instructions past their retention (module docstring), at most
    `max_batches` transactions of `batch` rows of each table; returns how many calls went, plus the legs and
    instructions that went on their own (not those that went with their call)."""
    now = router.clock.now()
    deleted = 0
    if call_retention is not None:
        deleted += delete_in_batches(router, None, _ended_calls(now - call_retention, batch), batch, max_batches)
    retentions = [retention for retention in (router.event_retention, call_retention) if retention is not None]
    if retentions:
        cutoff = now - min(retentions)
        for model in (AgentLeg, VoiceInstruction):
            expired = (select(model.reservation_sid)
                       .where(model.date_created < cutoff, ~exists().where(Reservation.sid == model.reservation_sid))
                       .order_by(model.date_created).limit(batch))
            deleted += delete_in_batches(
                router, None, rows_deleted_by(delete(model).where(model.reservation_sid.in_(expired.scalar_subquery()))),
                batch, max_batches)
    return deleted


def _ended_calls(cutoff: datetime, batch: int):
    """A batch for `delete_in_batches`: the oldest calls started before `cutoff` whose task is gone, and their legs."""
    def run(tx: Tx) -> int:
        rows = tx.session.execute(
            select(Call.call_sid, Call.task_sid)
            .where(Call.date_created < cutoff, or_(Call.task_sid.is_(None), ~exists().where(Task.sid == Call.task_sid)))
            .order_by(Call.date_created).limit(batch)).all()
        task_sids = [task_sid for _call_sid, task_sid in rows if task_sid is not None]
        if task_sids:
            tx.session.execute(delete(AgentLeg).where(AgentLeg.task_sid.in_(task_sids)), execution_options=_DELETE)
        if rows:
            tx.session.execute(delete(Call).where(Call.call_sid.in_([call_sid for call_sid, _ in rows])),
                               execution_options=_DELETE)
        return len(rows)
    return run
