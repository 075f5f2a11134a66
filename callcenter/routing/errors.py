"""One exception type per meaning, each carrying Twilio's error code and HTTP status.

The API layer maps these to `{"code", "message", "more_info", "status"}` in one place.
"""

from __future__ import annotations


class RoutingError(Exception):
    """Base of every error the engine raises on purpose."""

    code: int = 20001
    status: int = 400

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    @property
    def more_info(self) -> str:
        return f"https://www.twilio.com/docs/errors/{self.code}"

    def __str__(self) -> str:
        return self.message


class InvalidParameter(RoutingError):
    """A parameter is missing, malformed or out of range (Twilio 20001)."""

    code = 20001
    status = 400


class NotFound(RoutingError):
    """The resource does not exist in this workspace (Twilio 20404)."""

    code = 20404
    status = 404


class IllegalState(RoutingError):
    """The resource exists but is not in a state that allows the change (Twilio 20409)."""

    code = 20409
    status = 409


class ReservationNotPending(IllegalState):
    """Accepting or rejecting a reservation that was already decided (rescinded, timed out...): 410."""

    status = 410


class DuplicateName(IllegalState):
    """A unique name (friendly_name of an activity or worker, unique_name of a channel) is taken."""


class LimitExceeded(InvalidParameter):
    """A published TaskRouter limit would be exceeded (attributes size, capacity, counts)."""


class PreconditionFailed(RoutingError):
    """An `If-Match` header named a version the resource no longer has."""

    code = 412
    status = 412
