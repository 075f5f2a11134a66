"""The routing engine: TaskRouter's resources and semantics on our own database.

Pure Python and SQLAlchemy; no Flask, no twilio. Operations are functions of the domain modules
(`tasks.create_task(router, ...)`, `reservations.update_reservation(router, ...)`), each one
transaction on the `Router` it is given.
"""

from .clock import FakeClock, SystemClock
from .errors import (
    DuplicateName,
    IllegalState,
    InvalidParameter,
    LimitExceeded,
    NotFound,
    PreconditionFailed,
    ReservationNotPending,
    RoutingError,
)
from .router import Router, Tx

__all__ = [
    "DuplicateName", "FakeClock", "IllegalState", "InvalidParameter", "LimitExceeded", "NotFound",
    "PreconditionFailed", "ReservationNotPending", "Router", "RoutingError", "SystemClock", "Tx",
]
