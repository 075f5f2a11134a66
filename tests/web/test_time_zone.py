"""The contact center's time zone (`[workspace] timezone`): checked when the file is loaded, and the dashboard's
"today", its chart's hours and its title follow it, the days the clocks change included."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from callcenter import contact_center
from callcenter.contact_center import SpecError, read_spec
from callcenter.voice.models import Call
from callcenter.web.chart import day_chart, hourly_service_level
from callcenter.web.snapshots import today
from tests.support import CONTACT_CENTER_FILE
from tests.web.conftest import Browser

BASE = Path(CONTACT_CENTER_FILE).read_text()
NEW_YORK = ZoneInfo("America/New_York")


def file_in_zone(tmp_path, zone: str) -> Path:
    path = tmp_path / "contact-center.toml"
    path.write_text(BASE.replace("[workspace]\n", f'[workspace]\ntimezone = "{zone}"\n', 1))
    return path


def line_number(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), start=1) if text in line)


# -- the file -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("zone", ["America/New_Yrok", "EST5EDT/x", "../../etc/passwd", "", "America"])
def test_an_unknown_time_zone_is_refused_with_the_files_line(tmp_path, zone):
    path = file_in_zone(tmp_path, zone)

    with pytest.raises(SpecError) as refused:
        read_spec(path)

    assert str(refused.value).startswith(f"{path}, line {line_number(path, 'timezone =')}: workspace.timezone: ")
    assert f"{zone!r} is not a time zone" in str(refused.value) and "America/New_York" in str(refused.value)


def test_a_time_zone_outside_the_workspace_table_is_refused_not_ignored(tmp_path):
    path = tmp_path / "contact-center.toml"
    path.write_text('timezone = "Europe/Paris"\n' + BASE)

    with pytest.raises(SpecError, match=r", line 1: timezone: .* goes in \[workspace\]"):
        read_spec(path)


def test_the_time_zone_is_utc_unless_the_file_says_otherwise(tmp_path):
    assert read_spec(CONTACT_CENTER_FILE).timezone == "UTC"
    assert read_spec(file_in_zone(tmp_path, "Europe/Paris")).timezone == "Europe/Paris"


def test_other_errors_of_the_file_name_their_line_too(tmp_path):
    path = tmp_path / "contact-center.toml"
    path.write_text(BASE.replace("products HAS 'sales'", "products HAS", 1))

    with pytest.raises(SpecError) as refused:
        read_spec(path)

    line = line_number(path, "target_workers = \"products HAS\"")
    assert str(refused.value).startswith(f"{path}, line {line}: queues[0].target_workers: ")


# -- the day's boundaries -----------------------------------------------------------------------------

def test_today_runs_from_local_midnight_to_local_midnight():
    assert today(datetime(2026, 1, 5, 3, 0), NEW_YORK) == (datetime(2026, 1, 4, 5, 0), datetime(2026, 1, 5, 5, 0))
    assert today(datetime(2026, 1, 5, 6, 0), NEW_YORK) == (datetime(2026, 1, 5, 5, 0), datetime(2026, 1, 6, 5, 0))
    assert today(datetime(2026, 1, 5, 23, 30), ZoneInfo("Asia/Kolkata")) == (
        datetime(2026, 1, 5, 18, 30), datetime(2026, 1, 6, 18, 30))
    assert today(datetime(2026, 1, 5, 3, 0), ZoneInfo("UTC")) == (datetime(2026, 1, 5), datetime(2026, 1, 6))


def test_days_the_clocks_change_have_23_and_25_hours():
    spring_start, spring_end = today(datetime(2026, 3, 8, 12, 0), NEW_YORK)
    fall_start, fall_end = today(datetime(2026, 11, 1, 12, 0), NEW_YORK)

    assert (spring_start, spring_end) == (datetime(2026, 3, 8, 5, 0), datetime(2026, 3, 9, 4, 0))
    assert (fall_start, fall_end) == (datetime(2026, 11, 1, 4, 0), datetime(2026, 11, 2, 5, 0))


def test_a_midnight_the_clocks_skip_starts_the_day_when_it_really_begins():
    # Chile moved its clocks from 24:00 to 01:00 on 2022-09-11: that day began at 01:00 local, 04:00 UTC.
    start, end = today(datetime(2022, 9, 11, 12, 0), ZoneInfo("America/Santiago"))

    assert start == datetime(2022, 9, 11, 4, 0) and (end - start).total_seconds() == 23 * 3600


# -- the chart ----------------------------------------------------------------------------------------

def answered(enqueued: datetime, after_seconds: int = 5) -> Call:
    return Call(call_sid="CA" + enqueued.strftime("%m%d%H%M").ljust(32, "0"), workspace_sid="WS1",
                date_created=enqueued, date_enqueued=enqueued, date_answered=enqueued + timedelta(seconds=after_seconds),
                outcome="answered")


def test_the_day_the_clocks_go_back_the_chart_has_both_one_oclocks():
    now = datetime(2026, 11, 2, 4, 30)  # 23:30 EST on Sunday 1 November
    start, end = today(now, NEW_YORK)
    calls = [answered(datetime(2026, 11, 1, 5, 30)),  # 01:30 EDT
             answered(datetime(2026, 11, 1, 6, 30), after_seconds=60)]  # 01:30 EST, an hour later, answered late

    levels = hourly_service_level(calls, start, now, 20)
    chart = day_chart(calls, start, end, now, 20, NEW_YORK)

    assert len(levels) == 25 and levels[1:3] == [100, 0]
    assert "<title>01:00 EDT service level 100%</title>" in chart
    assert "<title>01:00 EST service level 0%</title>" in chart
    assert "today (America/New_York)" in chart


def test_the_day_the_clocks_go_forward_the_chart_skips_two_oclock():
    now = datetime(2026, 3, 9, 3, 30)  # 23:30 EDT on Sunday 8 March
    start, end = today(now, NEW_YORK)
    calls = [answered(datetime(2026, 3, 8, 7, 30))]  # 03:30 EDT: the third hour of a day without 02:00

    levels = hourly_service_level(calls, start, now, 20)
    chart = day_chart(calls, start, end, now, 20, NEW_YORK)

    assert len(levels) == 23 and levels[2] == 100
    assert "<title>03:00 EDT service level 100%</title>" in chart and "02:00" not in chart
    assert '>00</text>' in chart and '>04</text>' in chart and '>24</text>' in chart  # 00, then 3 hours later 04


def test_an_ordinary_day_is_labelled_as_before():
    now = datetime(2026, 1, 5, 15, 0)
    start, end = today(now, ZoneInfo("UTC"))

    chart = day_chart([answered(datetime(2026, 1, 5, 9, 10))], start, end, now, 20, ZoneInfo("UTC"))

    assert "<title>09:00 service level 100%</title>" in chart
    assert all(f">{hour:02d}</text>" in chart for hour in range(0, 25, 3))
    assert "today (UTC)" in chart


# -- the dashboard ------------------------------------------------------------------------------------

def abandoned_call_at(scenario, moment: datetime) -> None:
    scenario.clock.set(moment)
    caller = scenario.dial(digits="2")
    scenario.post("/voice/status", CallSid=caller, CallStatus="completed")  # hung up while waiting


@pytest.mark.parametrize(("zone", "abandoned_today"), [("UTC", 1), ("America/New_York", 2)])
def test_the_dashboards_today_is_the_contact_centers_day_across_a_clock_change(scenario, app, tmp_path, zone,
                                                                             abandoned_today):
    contact_center.load(app, str(file_in_zone(tmp_path, zone)))
    abandoned_call_at(scenario, datetime(2026, 11, 1, 3, 30))  # Saturday 23:30 EDT; Sunday in UTC
    abandoned_call_at(scenario, datetime(2026, 11, 1, 4, 30))  # Sunday 00:30 EDT
    abandoned_call_at(scenario, datetime(2026, 11, 2, 4, 10))  # Sunday 23:10 EST; Monday in UTC
    scenario.clock.set(datetime(2026, 11, 2, 4, 30))
    supervisor = Browser(app)
    supervisor.login("sam")

    state = supervisor.json("/dashboard/state.json")

    assert state["totals"]["abandoned"] == abandoned_today
    assert state["timezone"] == zone
    assert state["day_started"] == ("2026-11-02T00:00:00Z" if zone == "UTC" else "2026-11-01T04:00:00Z")
    assert f"today ({zone})" in state["chart_svg"]
    assert zone in supervisor.get("/dashboard").get_data(as_text=True)


@pytest.mark.parametrize(("zone", "shown"), [("UTC", "14:05 UTC"), ("America/New_York", "09:05 EST"),
                                              ("Europe/Paris", "15:05 CET")])
def test_a_missed_call_shows_the_contact_centers_clock_time(scenario, app, tmp_path, zone, shown):
    contact_center.load(app, str(file_in_zone(tmp_path, zone)))
    scenario.clock.set(datetime(2026, 11, 20, 14, 5))
    scenario.dial(digits="1")  # Sales: nobody available
    scenario.advance(120)  # its target times out: voicemail, a missed call
    supervisor = Browser(app)
    supervisor.login("sam")

    [missed] = supervisor.json("/dashboard/state.json")["missed_calls"]
    page = supervisor.get("/dashboard").get_data(as_text=True)

    assert (missed["date"], missed["time"]) == ("2026-11-20T14:05:00Z", shown)
    assert f'<time datetime="2026-11-20T14:05:00Z">{shown}</time>' in page
