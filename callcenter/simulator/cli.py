"""`flask --app app simulate DAY.toml`: a day of calls through the real app and engine, on a virtual clock."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask


@click.command("simulate")
@click.argument("day_file", type=click.Path(dir_okay=False, path_type=Path), default="demo/day.toml")
@click.option("--database", "database_url", default=None,
              help="SQLAlchemy URL to run on (default: a fresh SQLite file in a temporary directory).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default="simulation.html",
              show_default=True, help="Where to write the HTML report with its charts.")
@click.option("--seed", type=int, default=None, help="Override the day file's random seed.")
def simulate_command(day_file: Path, database_url: str | None, html_path: Path, seed: int | None) -> None:
    """Run a day of simulated calls (arrivals, menu mix, handle times, patience, agents' shifts from DAY_FILE)
    and report per queue speed of answer, service level, abandonment and occupancy beside Erlang C."""
    import dataclasses

    from callcenter.contact_center import SpecError
    from callcenter.simulator import report
    from callcenter.simulator.day import DayFileError, read_day, run_day

    try:
        plan = read_day(day_file)
        if seed is not None:
            plan = dataclasses.replace(plan, seed=seed)
        with click.progressbar(length=1000, label=f"Simulating {plan.day} {plan.opens:%H:%M}-{plan.closes:%H:%M}",
                               show_eta=False) as bar:
            done = [0]

            def progress(fraction: float) -> None:
                step = int(fraction * 1000) - done[0]
                if step > 0:
                    bar.update(step)
                    done[0] += step

            result = run_day(plan, database_url, progress)
            progress(1.0)
    except (DayFileError, SpecError) as err:
        raise click.ClickException(str(err)) from None
    queues = report.figures(result)
    click.echo("")
    click.echo(report.table(result, queues))
    html_path.write_text(report.html_report(result, queues), encoding="utf-8")
    simulated = (plan.moment(plan.closes) - plan.moment(plan.opens)).total_seconds() / 3600
    click.echo(f"\n{len(result.calls)} calls, {result.extra['webhooks']} webhooks, {simulated:.0f} simulated hours "
               f"in {result.wall_seconds:.1f} s. Chart: {html_path}. Database: {result.database_url}")
    if result.violations or result.double_booked:
        raise SystemExit(1)


def init_app(app: Flask) -> None:
    app.cli.add_command(simulate_command)
