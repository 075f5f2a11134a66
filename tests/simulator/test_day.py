"""`flask simulate`: a (short) day of simulated calls through the real app and engine, and its report."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from callcenter.simulator import report
from callcenter.simulator.cli import simulate_command
from callcenter.simulator.day import DayFileError, read_day, run_day

pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parents[2] / "demo"

DAY = """
contact_center = "{contact_center}"
date = "2026-03-02"
opens = "09:00"
closes = "{closes}"
seed = 3
service_level_seconds = 30

[calls]
per_hour = {{ 9 = {rate} }}
menu = {{ "1" = 0.3, "2" = 0.7 }}
handle_time = {{ distribution = "uniform", low = 60, high = 240 }}
patience = {{ distribution = "fixed", mean = 90 }}
leave_voicemail = 1.0

[[agents]]
name = "Alice"
shifts = [["09:00", "10:00"]]

[[agents]]
name = "Carol"
shifts = [["09:00", "09:30"]]

[[agents]]
name = "Dan"
shifts = [["09:00", "10:00"]]
"""


def day_file(tmp_path: Path, closes: str = "10:00", rate: int = 40) -> Path:
    path = tmp_path / "day.toml"
    path.write_text(DAY.format(contact_center=DEMO / "contact-center.toml", closes=closes, rate=rate))
    return path


def test_an_hour_of_calls_is_answered_abandoned_or_sent_to_voicemail_and_adds_up(tmp_path):
    plan = read_day(day_file(tmp_path))
    result = run_day(plan, f"sqlite:///{tmp_path / 'day.db'}")

    assert result.violations == [] and result.double_booked == {}
    queued = [call for call in result.calls if call["queue"] is not None]
    assert len(queued) == len(result.calls) > 20
    assert {call["outcome"] for call in queued} <= {"answered", "abandoned", "missed"}
    same = {"answered": "answered", "abandoned": "abandoned", "missed": "voicemail"}
    assert all(same[call["outcome"]] == call["simulator_outcome"] for call in queued)

    queues = {q.name: q for q in report.figures(result)}
    for name, figures in queues.items():
        assert figures.offered == figures.answered + figures.abandoned + figures.voicemail
        engine = result.engine_statistics[name]
        assert engine["tasks_entered"] == figures.offered
        assert engine["reservations_accepted"] == figures.answered
        assert 0 < figures.occupancy <= 1 and figures.handle_time > 60
        assert figures.predicted_sl is not None and 0 <= figures.predicted_sl <= 1
    assert queues["Sales"].offered + queues["Support"].offered == len(queued)

    # Carol's shift ended at 9:30: nobody rang her phone after that, and she is Offline.
    carol = result.agent_legs["Carol"]
    assert carol and all(leg["rang"] < plan.moment(time(9, 30)) for leg in carol)
    text = report.table(result, list(queues.values()))
    assert "Erlang C" in text and "Problems found (engine invariants, agents double-booked): none" in text
    page = report.html_report(result, list(queues.values()))
    assert page.count("<svg") == 2 and "Support" in page


def test_the_command_shows_the_table_and_writes_the_chart(tmp_path):
    chart = tmp_path / "report.html"
    outcome = CliRunner().invoke(simulate_command, [str(day_file(tmp_path, closes="09:10", rate=60)),
                                                    "--html", str(chart), "--database",
                                                    f"sqlite:///{tmp_path / 'cli.db'}"])
    assert outcome.exit_code == 0, outcome.output
    assert "Erlang C SL" in outcome.output and "Support" in outcome.output
    assert chart.read_text().startswith("<!doctype html>")


@pytest.mark.parametrize(("content", "message"), [
    ('[calls]\nper_hour = { 25 = 10 }\n[[agents]]\nname = "A"\n', "calls.per_hour: 25 = 10"),
    ('[calls]\nhandle_time = { distribution = "normal", mean = 3 }\n[[agents]]\nname = "A"\n', "not exponential"),
    ('opens = "nine"\n[[agents]]\nname = "A"\n', "opens: 'nine' is not a time of day"),
    ("[calls]\n", "at least one agent"),
])
def test_a_wrong_day_file_is_refused_with_where(tmp_path, content, message):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(DayFileError, match=message):
        read_day(path)
    outcome = CliRunner().invoke(simulate_command, [str(path), "--html", str(tmp_path / "x.html")])
    assert outcome.exit_code == 1 and message.split(":")[0] in outcome.output


def test_an_agent_missing_from_the_contact_center_is_named(tmp_path):
    path = day_file(tmp_path)
    path.write_text(path.read_text().replace('name = "Dan"', 'name = "Zed"'))
    outcome = CliRunner().invoke(simulate_command, [str(path), "--database", f"sqlite:///{tmp_path / 'z.db'}"])
    assert outcome.exit_code == 1 and "'Zed' is not an agent" in outcome.output
