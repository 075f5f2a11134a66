"""The figures of a simulated day, per queue and per hour, beside Erlang C's prediction for the same load.

Measured: calls offered (entered a queue), answered, abandoned (hung up waiting), sent to voicemail;
average speed of answer (queue entry to the agent taking the call: it includes the agent's phone
ringing and the press of 1); service level (answered within the target, over offered); agent
occupancy (phone ringing, talking and wrap-up, over time on shift). Predicted: Erlang C per hour with
the hour's offered calls, the queue's measured handle time (ring + talk + wrap-up per answered call)
and the agents on shift who serve the queue.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

from callcenter.simulator import erlang
from callcenter.simulator.day import DayResult


@dataclass
class Hour:
    hour: int
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    within_target: int = 0
    waits: list[float] = field(default_factory=list)
    agents: float = 0.0
    predicted_sl: float | None = None
    predicted_asa: float | None = None

    @property
    def service_level(self) -> float | None:
        return self.within_target / self.offered if self.offered else None


@dataclass
class QueueFigures:
    name: str
    offered: int
    answered: int
    abandoned: int
    voicemail: int
    asa: float | None
    service_level: float | None
    abandonment: float | None
    occupancy: float | None
    handle_time: float | None
    hours: list[Hour]
    predicted_asa: float | None
    predicted_sl: float | None
    overloaded_hours: int


def figures(result: DayResult) -> list[QueueFigures]:
    target = result.plan.service_level_seconds
    wrap_up = result.center.voice.wrap_up_seconds
    busy: dict[str, float] = {}
    for agent, legs in result.agent_legs.items():
        busy[agent] = sum(((leg["ended"] or leg["rang"]) - leg["rang"]).total_seconds()
                          + (wrap_up if leg["answered"] is not None else 0) for leg in legs)
    out = []
    for queue, _ in result.center.spec.queues:
        calls = [call for call in result.calls if call["queue"] == queue]
        hours: dict[int, Hour] = {}
        for call in calls:
            hour = hours.setdefault(call["enqueued"].hour, Hour(call["enqueued"].hour))
            hour.offered += 1
            if call["outcome"] == "answered" and call["answered"] is not None:
                wait = (call["answered"] - call["enqueued"]).total_seconds()
                hour.answered += 1
                hour.waits.append(wait)
                hour.within_target += wait <= target
            elif call["outcome"] == "abandoned":
                hour.abandoned += 1
        agents = [name for name, queues in result.queue_of_agent.items() if queue in queues]
        answered = sum(h.answered for h in hours.values())
        agent_busy = sum(busy[name] for name in agents)
        staffed = sum(sum(result.staffed_seconds[name].values()) for name in agents)
        handle_time = agent_busy / answered if answered else None
        for hour in hours.values():
            hour.agents = sum(result.staffed_seconds[name].get(hour.hour, 0.0) for name in agents) / 3600
            if handle_time:
                traffic = hour.offered * handle_time / 3600
                staff = math.floor(hour.agents + 1e-9)
                hour.predicted_sl = erlang.service_level(staff, traffic, handle_time, target)
                hour.predicted_asa = erlang.average_speed_of_answer(staff, traffic, handle_time)
        ordered = [hours[h] for h in sorted(hours)]
        waits = [w for h in ordered for w in h.waits]
        offered = len(calls)
        stable = [h for h in ordered if h.predicted_asa is not None and math.isfinite(h.predicted_asa)]
        predicted = [h for h in ordered if h.predicted_sl is not None]
        out.append(QueueFigures(
            name=queue, offered=offered, answered=answered, abandoned=sum(h.abandoned for h in ordered),
            voicemail=sum(1 for call in calls if call["outcome"] == "missed"),
            asa=sum(waits) / len(waits) if waits else None,
            service_level=sum(h.within_target for h in ordered) / offered if offered else None,
            abandonment=sum(h.abandoned for h in ordered) / offered if offered else None,
            occupancy=agent_busy / staffed if staffed else None, handle_time=handle_time, hours=ordered,
            predicted_asa=_weighted(stable, "predicted_asa"), predicted_sl=_weighted(predicted, "predicted_sl"),
            overloaded_hours=len(predicted) - len(stable)))
    return out


def _weighted(hours: list[Hour], name: str) -> float | None:
    total = sum(h.offered for h in hours)
    return sum(getattr(h, name) * h.offered for h in hours) / total if total else None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _secs(value: float | None) -> str:
    return "-" if value is None else ("inf" if not math.isfinite(value) else f"{value:.0f}s")


COLUMNS = ("queue", "offered", "answered", "abandoned", "voicemail", "ASA", "SL", "abandon", "occupancy", "AHT",
           "Erlang C ASA", "Erlang C SL")


def rows(queues: list[QueueFigures]) -> list[tuple[str, ...]]:
    return [(q.name, str(q.offered), str(q.answered), str(q.abandoned), str(q.voicemail), _secs(q.asa),
             _pct(q.service_level), _pct(q.abandonment), _pct(q.occupancy), _secs(q.handle_time),
             _secs(q.predicted_asa) + ("*" if q.overloaded_hours else ""), _pct(q.predicted_sl)) for q in queues]


def table(result: DayResult, queues: list[QueueFigures]) -> str:
    """The report as text: one row per queue, then the cross-checks."""
    body = [COLUMNS, *rows(queues)]
    widths = [max(len(row[i]) for row in body) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
             for row in body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    target = result.plan.service_level_seconds
    lines.append("")
    lines.append(f"SL: answered within {target} s of entering the queue, over offered. ASA includes the agent's "
                 "phone ringing and the press of 1. AHT: ring + talk + wrap-up per answered call.")
    if any(q.overloaded_hours for q in queues):
        lines.append("*: Erlang C has no finite answer for hours with fewer agents than Erlangs of traffic; "
                     "ASA is over the other hours.")
    lines.append("Erlang C assumes nobody hangs up; callers here abandon, which shortens the line for the others.")
    engine = ", ".join(f"{name}: {s['tasks_entered']} entered / {s['reservations_accepted']} accepted / "
                       f"{s['tasks_canceled']} canceled" for name, s in result.engine_statistics.items())
    lines.append(f"Engine statistics (TaskRouter cumulative): {engine}")
    simulated = ", ".join(f"{k} {v}" for k, v in sorted(result.simulator_outcomes.items()))
    lines.append(f"Simulator's view of the callers: {simulated}")
    checks = "none" if not result.violations and not result.double_booked else (
        f"{len(result.violations)} invariant violation(s), double-booked phones: {result.double_booked}")
    lines.append(f"Problems found (engine invariants, agents double-booked): {checks}")
    return "\n".join(lines)


# -- the HTML report with inline SVG charts ----------------------------------------------------------

def _chart(queue: QueueFigures, target: int) -> str:
    width, height, left, right, top, bottom = 640, 260, 44, 44, 20, 36
    hours = queue.hours
    if not hours:
        return "<p>No calls.</p>"
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / len(hours)
    peak = max(max(h.offered for h in hours), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(queue.name)} by hour">',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>']
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        parts.append(f'<text x="{left - 6}" y="{y + 4}" font-size="10" text-anchor="end">{round(peak * fraction)}</text>'
                     f'<text x="{left + plot_w + 6}" y="{y + 4}" font-size="10">{int(fraction * 100)}%</text>')
    sim_points, erlang_points = [], []
    for index, hour in enumerate(hours):
        x = left + index * slot
        for value, color, shift in ((hour.offered, "#c8d3e0", 0.15), (hour.answered, "#4c78a8", 0.45)):
            h = plot_h * value / peak
            parts.append(f'<rect x="{x + slot * shift:.1f}" y="{top + plot_h - h:.1f}" width="{slot * 0.3:.1f}" '
                         f'height="{h:.1f}" fill="{color}"><title>{value}</title></rect>')
        parts.append(f'<text x="{x + slot / 2:.1f}" y="{height - bottom + 14}" font-size="10" '
                     f'text-anchor="middle">{hour.hour:02d}h</text>')
        center = x + slot / 2
        if hour.service_level is not None:
            sim_points.append(f"{center:.1f},{top + plot_h * (1 - hour.service_level):.1f}")
        if hour.predicted_sl is not None:
            erlang_points.append(f"{center:.1f},{top + plot_h * (1 - hour.predicted_sl):.1f}")
    parts.append(f'<polyline points="{" ".join(sim_points)}" fill="none" stroke="#2ca02c" stroke-width="2"/>')
    parts.append(f'<polyline points="{" ".join(erlang_points)}" fill="none" stroke="#ff7f0e" stroke-width="2" '
                 'stroke-dasharray="5,3"/>')
    legend = [("#c8d3e0", "offered"), ("#4c78a8", "answered"), ("#2ca02c", f"service level ({target} s)"),
              ("#ff7f0e", "Erlang C service level")]
    for index, (color, label) in enumerate(legend):
        x = left + index * 150
        parts.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{x + 14}" y="{height - 5}" font-size="11">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def html_report(result: DayResult, queues: list[QueueFigures]) -> str:
    """A self-contained page: the table, then one chart per queue (calls by hour, service level vs Erlang C)."""
    plan = result.plan
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows(queues))
    charts = "".join(f"<h2>{html.escape(q.name)}</h2>{_chart(q, plan.service_level_seconds)}" for q in queues)
    notes = html.escape(table(result, queues).split("\n\n", 1)[1]).replace("\n", "<br>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Simulated day {plan.day}</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
            "td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}td:first-child,th:first-child"
            "{text-align:left}</style></head><body>"
            f"<h1>Simulated day: {html.escape(plan.path.name)} ({plan.day}, {plan.opens:%H:%M}-{plan.closes:%H:%M})</h1>"
            f"<table><tr>{head}</tr>{body}</table><p>{notes}</p>{charts}</body></html>")
