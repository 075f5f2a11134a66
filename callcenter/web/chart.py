"""The dashboard's chart of the day, as inline SVG drawn on the server: no script, no library, no CDN.

Waiting calls are sampled every 15 minutes (a line); the service level of each hour is the share of
the calls that reached a queue in that hour and were answered within the threshold (bars). The day is
the contact center's, in its time zone: hours are counted from its local midnight and labelled with
the local time, so a day the clocks change has 23 or 25 of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from callcenter.voice.models import Call

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 36, 40, 12, 28
SAMPLE = timedelta(minutes=15)


def waiting_at(calls: Sequence[Call], moment: datetime) -> int:
    """Callers in a queue at `moment`: enqueued, and not yet answered or gone."""
    count = 0
    for call in calls:
        if call.date_enqueued is None or call.date_enqueued > moment:
            continue
        left = call.date_answered or call.date_ended
        if left is None and call.outcome is not None:
            left = call.date_enqueued  # over, with no time recorded: do not count it as waiting
        if left is None or left > moment:
            count += 1
    return count


def hourly_service_level(calls: Sequence[Call], day: datetime, now: datetime, threshold: int) -> list[int | None]:
    """Per hour of the day so far: % of the calls enqueued that hour answered within `threshold` s (None: no call)."""
    hours = int((now - day).total_seconds() // 3600) + 1
    offered, in_time = [0] * hours, [0] * hours
    for call in calls:
        if call.date_enqueued is None or call.outcome not in ("answered", "abandoned", "missed"):
            continue
        hour = int((call.date_enqueued - day).total_seconds() // 3600)
        if not 0 <= hour < hours:
            continue
        offered[hour] += 1
        if call.outcome == "answered" and (call.date_answered - call.date_enqueued).total_seconds() <= threshold:
            in_time[hour] += 1
    return [round(100 * good / total) if total else None for good, total in zip(in_time, offered, strict=True)]


def day_chart(calls: Sequence[Call], day: datetime, day_end: datetime, now: datetime, threshold: int,
              zone: ZoneInfo) -> str:
    """The chart from `day` to `day_end` (naive UTC: the contact center's local midnights) as of `now`."""
    length = (day_end - day).total_seconds()
    hours = int(-(-length // 3600))  # 23, 24 or 25 (and 23.5 or 24.5 where clocks move by half an hour)
    clocks_change = length != 86400

    def local(moment: datetime) -> datetime:
        return moment.replace(tzinfo=UTC).astimezone(zone)

    def hour_label(moment: datetime) -> str:
        # The day the clocks go back has two 01:00s: the zone's abbreviation tells them apart.
        return f"{local(moment):%H:%M %Z}" if clocks_change else f"{local(moment):%H:%M}"

    samples: list[tuple[datetime, int]] = []
    moment = day
    while moment < now:
        samples.append((moment, waiting_at(calls, moment)))
        moment += SAMPLE
    samples.append((now, waiting_at(calls, now)))
    levels = hourly_service_level(calls, day, now, threshold)
    top = max(4, max(count for _, count in samples))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(moment: datetime) -> float:
        return LEFT + plot_w * (moment - day).total_seconds() / length

    def y_count(count: float) -> float:
        return TOP + plot_h * (1 - count / top)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" class="chart" role="img" '
             f'aria-labelledby="chart-title"><title id="chart-title">Callers waiting (line) and service level '
             f'within {threshold} s per hour (bars), today ({zone.key})</title>']
    for hour, level in enumerate(levels):
        if level is None:
            continue
        bar_h = plot_h * level / 100
        start = day + timedelta(hours=hour)
        width = x(min(start + timedelta(hours=1), day_end)) - x(start)
        parts.append(f'<rect class="sl" x="{x(start) + 1:.1f}" y="{TOP + plot_h - bar_h:.1f}" '
                     f'width="{max(width - 2, 1):.1f}" height="{bar_h:.1f}"><title>{hour_label(start)} service level '
                     f'{level}%</title></rect>')
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{round(top * fraction)}</text>')
        parts.append(f'<text class="axis sl-axis" x="{WIDTH - RIGHT + 4}" y="{y + 4:.1f}">{round(100 * fraction)}%</text>')
    ticks = [(day + timedelta(hours=hour), f"{local(day + timedelta(hours=hour)):%H}") for hour in range(0, hours, 3)]
    if hours - 3 * (len(ticks) - 1) >= 2:  # the day's end, unless it would sit on the last tick's label
        ticks.append((day_end, "24"))
    for moment, label in ticks:
        parts.append(f'<text class="axis" x="{x(moment):.1f}" y="{HEIGHT - 8}" text-anchor="middle">{label}</text>')
    points = " ".join(f"{x(moment):.1f},{y_count(count):.1f}" for moment, count in samples)
    parts.append(f'<polyline class="waiting" points="{points}"/>')
    parts.append("</svg>")
    return "".join(parts)
