"""Erlang C against published values: the textbook M/M/1 and M/M/2 closed forms, and the classic worked example
(100 calls per half hour, 180 s handle time, 14 agents: 17.4 % wait, 88.8 % answered within 20 s, ASA 7.8 s)."""

from __future__ import annotations

import math

import pytest

from callcenter.simulator.erlang import average_speed_of_answer, erlang_b, erlang_c, occupancy, service_level


def test_single_and_two_agent_closed_forms():
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)  # M/M/2: 2 rho^2 / (1 + rho), rho = 0.5
    assert erlang_b(1, 1.0) == pytest.approx(0.5)


@pytest.mark.parametrize(("agents", "expected"), [(11, 0.6821), (12, 0.4494), (13, 0.2853), (14, 0.1741)])
def test_ten_erlangs_table(agents, expected):
    assert erlang_c(agents, 10.0) == pytest.approx(expected, abs=5e-4)


def test_worked_example_service_level_and_speed_of_answer():
    traffic = 100 * 180 / 1800
    assert service_level(14, traffic, 180, 20) == pytest.approx(0.888, abs=1e-3)
    assert average_speed_of_answer(14, traffic, 180) == pytest.approx(7.8, abs=0.05)
    assert occupancy(14, traffic) == pytest.approx(10 / 14)


def test_overloaded_and_idle_queues():
    assert erlang_c(5, 5.0) == 1.0 and erlang_c(3, 7.5) == 1.0
    assert average_speed_of_answer(5, 6.0, 120) == math.inf
    assert service_level(5, 6.0, 120, 20) == 0.0
    assert erlang_c(3, 0.0) == 0.0 and service_level(3, 0.0, 120, 20) == 1.0
