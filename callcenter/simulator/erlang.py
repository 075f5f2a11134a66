"""Erlang C: what queueing theory predicts for calls arriving at random to N identical agents.

Traffic `A` (Erlangs) = arrival rate x average handle time. With `N` agents (N > A) a call waits with
probability C(N, A); the average speed of answer is C x AHT / (N - A), and the share answered within
`t` seconds is 1 - C x exp(-(N - A) x t / AHT). The model assumes Poisson arrivals, exponential
handle times, and callers who never hang up: with abandonment, real queues do better than it says.
"""

from __future__ import annotations

import math


def erlang_b(agents: int, traffic: float) -> float:
    """Probability that all `agents` are busy in a loss system (the recursion avoids huge factorials)."""
    blocking = 1.0
    for n in range(1, agents + 1):
        blocking = traffic * blocking / (n + traffic * blocking)
    return blocking


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a call has to wait (1.0 when the agents cannot keep up: N <= A)."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return 1.0
    blocking = erlang_b(agents, traffic)
    return agents * blocking / (agents - traffic * (1 - blocking))


def average_speed_of_answer(agents: int, traffic: float, handle_time: float) -> float:
    """Mean seconds a call waits for an agent (inf when overloaded)."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return math.inf
    return erlang_c(agents, traffic) * handle_time / (agents - traffic)


def service_level(agents: int, traffic: float, handle_time: float, target_seconds: float) -> float:
    """Share of calls answered within `target_seconds` (0.0 when overloaded)."""
    if traffic <= 0:
        return 1.0
    if agents <= traffic:
        return 0.0
    return 1.0 - erlang_c(agents, traffic) * math.exp(-(agents - traffic) * target_seconds / handle_time)


def occupancy(agents: int, traffic: float) -> float:
    """Share of the agents' time spent handling calls."""
    return min(1.0, traffic / agents) if agents else 0.0
