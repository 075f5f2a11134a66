"""A day of calls through the real app and engine, on the simulator's virtual clock (`flask simulate`).

The day file (TOML, see demo/day.toml) gives the contact center to load, the opening hours, calls
per hour, the menu mix, handle-time and patience distributions, and each agent's shifts. Every
caller is a simulated `Caller` who phones the app's number, picks a menu option, waits at most their
patience, talks for their handle time; every agent is a simulated phone that answers after a few
seconds and presses 1. Agents become Available at the start of a shift and Offline at its end
(once their current call is wrapped up). Nothing is mocked inside the app: the voice webhooks, the
engine, its timers and callbacks all run, in this process, on a fresh SQLite database.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from callcenter.contact_center import ContactCenter, Spec
from callcenter.routing.expressions import compile_expression
from callcenter.routing.models import Reservation, Worker
from callcenter.simulator.parties import Caller

ACCOUNT_SID = "AC" + "51" * 16
AUTH_TOKEN = "simulated-day-auth-token"
APP_URL = "http://callcenter.simulated"
NUMBER = "+15550100000"


class DayFileError(ValueError):
    """The day file is wrong; the message says where."""


@dataclass(frozen=True)
class Distribution:
    """Seconds drawn at random: `exponential` (mean), `lognormal` (mean, sd), `uniform` (low, high), `fixed`."""

    kind: str
    mean: float
    sd: float = 0.0
    low: float = 0.0
    high: float = 0.0

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.mean
        if self.kind == "exponential":
            return rng.expovariate(1 / self.mean)
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        variance = math.log(1 + (self.sd / self.mean) ** 2)  # lognormal with this mean and sd
        return rng.lognormvariate(math.log(self.mean) - variance / 2, math.sqrt(variance))


@dataclass(frozen=True)
class AgentPlan:
    name: str
    shifts: tuple[tuple[time, time], ...]
    answer_after: float


@dataclass(frozen=True)
class DayPlan:
    path: Path
    contact_center: Path
    day: date
    opens: time
    closes: time
    seed: int
    service_level_seconds: int
    arrivals_per_hour: dict[int, float]
    menu: dict[str, float]
    handle_time: Distribution
    patience: Distribution | None
    voicemail_share: float
    agents: tuple[AgentPlan, ...]

    def moment(self, at: time) -> datetime:
        return datetime.combine(self.day, at)


@dataclass
class DayResult:
    """What happened: the app's calls (voice_calls rows as dicts), the simulator, the staffing, and timings."""

    plan: DayPlan
    center: ContactCenter
    calls: list[dict[str, Any]]
    agent_legs: dict[str, list[dict[str, Any]]]  # agent name -> their phone's calls
    staffed_seconds: dict[str, dict[int, float]]  # agent name -> hour -> seconds on shift
    queue_of_agent: dict[str, list[str]]  # agent name -> queues they serve
    engine_statistics: dict[str, dict[str, Any]]  # queue name -> TaskRouter cumulative statistics
    simulator_outcomes: dict[str, int]
    violations: list[str]
    double_booked: dict[str, list[str]]
    wall_seconds: float = 0.0
    database_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# -- reading the file -------------------------------------------------------------------------------

def read_day(path: str | Path) -> DayPlan:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DayFileError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as err:
        raise DayFileError(f"{path}: {err}") from None
    calls = raw.get("calls", {})
    arrivals = {}
    for hour, rate in (calls.get("per_hour") or {}).items():
        if not str(hour).isdigit() or not 0 <= int(hour) <= 23 or not isinstance(rate, (int, float)) or rate < 0:
            raise DayFileError(f"calls.per_hour: {hour} = {rate!r}: an hour 0-23 and a number of calls are expected")
        arrivals[int(hour)] = float(rate)
    menu = {str(digit): float(share) for digit, share in (calls.get("menu") or {"": 1}).items()}
    if any(share < 0 for share in menu.values()) or not sum(menu.values()):
        raise DayFileError("calls.menu: shares must be positive")
    defaults = raw.get("agent_defaults", {})
    agents = []
    for index, item in enumerate(raw.get("agents", [])):
        name = item.get("name")
        if not name:
            raise DayFileError(f"agents[{index}].name is missing")
        shifts = tuple((_time(a, f"agents[{index}].shifts"), _time(b, f"agents[{index}].shifts"))
                       for a, b in item.get("shifts", []))
        agents.append(AgentPlan(name, shifts, float(item.get("answer_after", defaults.get("answer_after", 4)))))
    if not agents:
        raise DayFileError("[[agents]]: at least one agent with shifts is needed")
    patience = calls.get("patience")
    return DayPlan(
        path=path,
        contact_center=(path.parent / raw.get("contact_center", "contact-center.toml")).resolve(),
        day=date.fromisoformat(str(raw.get("date", "2026-01-05"))),
        opens=_time(raw.get("opens", "08:00"), "opens"),
        closes=_time(raw.get("closes", "18:00"), "closes"),
        seed=int(raw.get("seed", 1)),
        service_level_seconds=int(raw.get("service_level_seconds", 20)),
        arrivals_per_hour=arrivals,
        menu=menu,
        handle_time=_distribution(calls.get("handle_time", {"distribution": "exponential", "mean": 180}),
                                  "calls.handle_time"),
        patience=_distribution(patience, "calls.patience") if patience else None,
        voicemail_share=float(calls.get("leave_voicemail", 0.5)),
        agents=tuple(agents),
    )


def _time(value: Any, where: str) -> time:
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise DayFileError(f"{where}: {value!r} is not a time of day (HH:MM)") from None


def _distribution(raw: dict[str, Any], where: str) -> Distribution:
    kind = raw.get("distribution", "exponential")
    if kind not in ("exponential", "lognormal", "uniform", "fixed"):
        raise DayFileError(f"{where}.distribution: {kind!r} is not exponential, lognormal, uniform or fixed")
    if kind == "uniform":
        low, high = float(raw.get("low", 0)), float(raw.get("high", 0))
        if not 0 <= low < high:
            raise DayFileError(f"{where}: uniform needs 0 <= low < high")
        return Distribution(kind, (low + high) / 2, low=low, high=high)
    mean = float(raw.get("mean", 0))
    if mean <= 0:
        raise DayFileError(f"{where}.mean: a positive number of seconds is expected")
    return Distribution(kind, mean, sd=float(raw.get("sd", mean)))


# -- the traffic ------------------------------------------------------------------------------------

def arrivals(plan: DayPlan, rng: random.Random) -> list[tuple[datetime, Caller]]:
    """Poisson arrivals hour by hour between opening and closing, each with its own menu choice and times."""
    calls = []
    digits, weights = list(plan.menu), list(plan.menu.values())
    moment, closes = plan.moment(plan.opens), plan.moment(plan.closes)
    number = 0
    while moment < closes:
        hour_end = min(closes, moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
        rate = plan.arrivals_per_hour.get(moment.hour, 0.0)
        if rate <= 0:
            moment = hour_end
            continue
        moment += timedelta(seconds=rng.expovariate(rate / 3600))
        if moment >= hour_end:
            moment = hour_end  # memoryless: starting over at the hour is the same process
            continue
        number += 1
        digit = rng.choices(digits, weights)[0]
        caller = Caller(f"+1555{2000000 + number:07d}", digits=digit or None,
                        patience=plan.patience.sample(rng) if plan.patience else None,
                        talk_time=max(1.0, plan.handle_time.sample(rng)),
                        voicemail=rng.random() < plan.voicemail_share)
        calls.append((moment, caller))
    return calls


def queue_for(spec: Spec, attributes: dict[str, Any]) -> str:
    """The queue the workflow sends a call with these attributes to first (as the engine would)."""
    for item in spec.filters:
        if compile_expression(item["expression"])(attributes):
            return item["targets"][0]["queue"]
    return spec.default_filter["queue"] if spec.default_filter else "(no queue)"


def serves(spec: Spec, agent_attributes: dict[str, Any]) -> list[str]:
    return [name for name, target in spec.queues if compile_expression(target)(agent_attributes)]


# -- running it -------------------------------------------------------------------------------------

def run_day(plan: DayPlan, database_url: str | None = None,
            progress: Callable[[float], None] | None = None) -> DayResult:
    """Run the day; `progress(fraction of the opening hours done)` as virtual time passes."""
    import time as wall

    from app import create_app
    from callcenter import contact_center
    from callcenter.database import get_router
    from callcenter.simulator.clock import VirtualClock
    from callcenter.simulator.harness import Harness, wire_in_process
    from callcenter.simulator.server import simulator_of

    started = wall.monotonic()
    if database_url is None:
        database_url = f"sqlite:///{tempfile.mkdtemp(prefix='callcenter-day-')}/day.db"
    app = create_app({
        "DATABASE_URL": database_url, "RUN_SWEEPER": False, "AUTO_MIGRATE": True, "LOG_LEVEL": "WARNING",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PUBLIC_BASE_URL": APP_URL,
        "CALLBACK_BASE_URL": None, "TWILIO_PHONE_NUMBER": NUMBER, "CONTACT_CENTER_FILE": str(plan.contact_center),
        "SERVICE_LEVEL_SECONDS": plan.service_level_seconds,
    })
    router = get_router(app)
    try:  # the router's connections and checkpoint thread end with the day, whatever happens
        first_shift = min([s for agent in plan.agents for s, _ in agent.shifts] + [plan.opens])
        clock = VirtualClock(plan.moment(first_shift) - timedelta(minutes=1))
        sim = simulator_of(wire_in_process(app, clock, number=NUMBER))
        harness = Harness(router, sim)
        with app.app_context():
            center, _ = contact_center.load(app)
        spec = center.spec
        workers = _workers(router, center)
        agents_by_name = {agent.name: agent for agent in spec.agents}
        for agent in plan.agents:
            if agent.name not in agents_by_name:
                raise DayFileError(f"agents: {agent.name!r} is not an agent of {plan.contact_center.name}")
            sim.add_phone(agents_by_name[agent.name].contact_uri, answer_after=agent.answer_after, handle_time=None,
                          then_digits="1" if spec.voice.agent_confirm else None)
            for start, end in agent.shifts:
                sim.scheduler.at(plan.moment(start), _shift_change(harness, center, workers[agent.name], "available"),
                                 f"{agent.name} starts")
                sim.scheduler.at(plan.moment(end), _shift_change(harness, center, workers[agent.name], "offline"),
                                 f"{agent.name} ends")
        rng = random.Random(plan.seed)
        for moment, caller in arrivals(plan, rng):
            sim.scheduler.at(moment, lambda caller=caller: sim.place_call(caller), "arrival")

        opens, closes = plan.moment(plan.opens), plan.moment(plan.closes)
        span = max(1.0, (closes - opens).total_seconds())

        def report_progress(now: datetime) -> None:
            if progress is not None:
                progress(min(1.0, max(0.0, (now - opens).total_seconds() / span)))

        harness.run_until(closes, report_progress)
        harness.run_until_quiet(max_seconds=4 * 3600)  # calls still in line or talking at closing time finish
        last_shift = max([e for agent in plan.agents for _, e in agent.shifts] + [plan.closes])
        harness.run_until(max(clock.now(), plan.moment(last_shift)) + timedelta(minutes=5))
        return _collect(plan, app, router, center, sim, database_url, wall.monotonic() - started)
    finally:
        router.dispose()


def _workers(router, center: ContactCenter) -> dict[str, str]:
    with router.read() as session:
        rows = session.scalars(select(Worker).where(Worker.workspace_sid == center.workspace_sid)).all()
    return {row.friendly_name: row.sid for row in rows}


def _shift_change(harness, center: ContactCenter, worker_sid: str, role: str) -> Callable[[], None]:
    """Available at the start of a shift; Offline at its end, once the agent is between calls.

    An agent on a call is looked at again every second; one in wrap-up goes Offline at once, and the
    voice app leaves an agent who chose another activity during wrap-up where they are. (With
    `wrap_up_seconds = 0` an agent may be matched again the moment their call ends.)
    """
    from callcenter.routing import workers

    router, sim = harness.router, harness.sim
    idle = {center.activity_for("available"), center.role_sids.get("wrap_up"), center.activity_for("offline")}

    def change() -> None:
        if role == "offline":
            with router.read() as session:
                worker = session.get(Worker, worker_sid)
                ringing = session.scalar(select(Reservation.sid).where(
                    Reservation.worker_sid == worker_sid, Reservation.reservation_status == "pending"))
            if ringing is not None or worker.activity_sid not in idle:
                sim.scheduler.after(1, change, "shift end, once between calls")
                return
        workers.update_worker(router, center.workspace_sid, worker_sid, activity_sid=center.activity_for(role))
        harness.touch()

    return change


def _collect(plan: DayPlan, app, router, center: ContactCenter, sim, database_url: str, seconds: float) -> DayResult:
    from callcenter.routing.invariants import check_invariants
    from callcenter.routing.statistics import task_queue_cumulative
    from callcenter.voice.models import Call

    spec = center.spec
    with router.read() as session:
        rows = session.scalars(select(Call).where(Call.workspace_sid == center.workspace_sid)).all()
    calls = []
    for row in rows:
        choices = json.loads(row.choices or "{}")
        calls.append({"call_sid": row.call_sid, "queue": queue_for(spec, choices) if row.task_sid else None,
                      "outcome": row.outcome, "enqueued": row.date_enqueued, "answered": row.date_answered,
                      "ended": row.date_ended, "simulator_outcome": sim.calls[row.call_sid].outcome
                      if row.call_sid in sim.calls else None})
    agent_legs, staffed, serving = {}, {}, {}
    for agent in plan.agents:
        spec_agent = next(a for a in spec.agents if a.name == agent.name)
        phone = sim.phones[spec_agent.contact_uri]
        agent_legs[agent.name] = [{"rang": sim.calls[sid].date_created, "answered": sim.calls[sid].start_time,
                                   "ended": sim.calls[sid].end_time, "status": sim.calls[sid].status}
                                  for sid in phone.calls]
        staffed[agent.name] = _seconds_by_hour(plan, agent.shifts)
        serving[agent.name] = serves(spec, spec_agent.worker_attributes())
    window = {"start_date": plan.moment(time(0)), "end_date": router.clock.now()}
    engine = {name: task_queue_cumulative(router, center.workspace_sid, sid, **window)
              for name, sid in center.queue_sids.items() if name in {n for n, _ in spec.queues}}
    outcomes: dict[str, int] = {}
    for call in sim.calls.values():
        if call.direction == "inbound":
            outcomes[call.outcome or "active"] = outcomes.get(call.outcome or "active", 0) + 1
    return DayResult(plan, center, calls, agent_legs, staffed, serving, engine, outcomes,
                     check_invariants(router, center.workspace_sid),
                     {p.contact: list(p.double_booked) for p in sim.phones.values() if p.double_booked},
                     seconds, database_url, {"webhooks": sum(len(c.webhooks()) for c in sim.calls.values())})


def _seconds_by_hour(plan: DayPlan, shifts: tuple[tuple[time, time], ...]) -> dict[int, float]:
    by_hour: dict[int, float] = {}
    for start, end in shifts:
        moment, stop = plan.moment(start), plan.moment(end)
        while moment < stop:
            hour_end = min(stop, moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
            by_hour[moment.hour] = by_hour.get(moment.hour, 0.0) + (hour_end - moment).total_seconds()
            moment = hour_end
    return by_hour
