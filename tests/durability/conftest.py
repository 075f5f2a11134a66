"""The callback tests' contact center: its callbacks get 0.3 s instead of Twilio's 5 s, so that "slower than
the deadline" costs a fraction of a second."""

from __future__ import annotations

import pytest

from tests.routing.conftest import Center


@pytest.fixture
def center(router, clock):
    router.deliverer.assignment_deadline = 0.3
    router.deliverer.event_deadline = 0.3
    center = Center(router, clock)
    yield center
    center.assert_consistent()
