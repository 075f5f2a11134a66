"""Twilio's wire format: form parameters in, JSON out, dates, absolute URLs, paging and errors.

Everything the resource modules share lives here, so that each of them reads as "parameters ->
engine call -> representation".
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from flask import current_app, g, jsonify, request
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from callcenter.routing.errors import InvalidParameter, NotFound
from callcenter.routing.models import Workspace
from callcenter.routing.validation import boolean

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


# -- values ----------------------------------------------------------------------------------------

def iso(moment: datetime | None) -> str | None:
    """`YYYY-MM-DDTHH:MM:SSZ`, the only date form the twilio SDK parses."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def parse_date(value: str | None, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameter(f"{name} must be an ISO 8601 date-time like 2024-05-01T12:00:00Z") from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first representable moment
            raise InvalidParameter(f"{name} is out of range") from None
    return parsed


# -- parameters ------------------------------------------------------------------------------------

def param(name: str, default: Any = None) -> Any:
    """A form parameter of a POST, or a query parameter of a GET."""
    source = request.form if request.method == "POST" else request.args
    return source.get(name, default)


def param_list(name: str) -> list[str]:
    """A list parameter: repeated keys (`X=a&X=b`) and comma-separated values both work."""
    source = request.form if request.method == "POST" else request.args
    values: list[str] = []
    for raw in source.getlist(name):
        values.extend(part.strip() for part in raw.split(",") if part.strip())
    return values


def bool_param(name: str) -> bool | None:
    value = param(name)
    return None if value is None else boolean(value, name)


def has_param(name: str) -> bool:
    source = request.form if request.method == "POST" else request.args
    return name in source


def if_match() -> str | None:
    return request.headers.get("If-Match")


# -- URLs ------------------------------------------------------------------------------------------

def base_url() -> str:
    """This server's own scheme and host (ProxyFix makes forwarded headers count), no trailing slash."""
    return request.host_url.rstrip("/")


def url_for_path(path: str) -> str:
    return f"{base_url()}/v1{path}"


# -- scoping ---------------------------------------------------------------------------------------

def workspace_of_account(session: Session, workspace_sid: str) -> Workspace:
    """The workspace, if it belongs to the authenticated account; otherwise 404 (never 403)."""
    workspace = session.get(Workspace, workspace_sid)
    if workspace is None or workspace.account_sid != g.account_sid:
        raise NotFound(f"The requested resource /Workspaces/{workspace_sid} was not found")
    return workspace


def check_workspace_owner(workspace_sid: str, router) -> None:
    """404 unless the authenticated account owns the workspace; remembered, as a workspace never changes owner.

    For writes: the engine's transaction then finds the workspace itself (a deleted one is 404 there).
    """
    owners = current_app.extensions.setdefault("workspace_owners", {})
    if owners.get(workspace_sid) == g.account_sid:
        return
    with router.read() as session:
        workspace = workspace_of_account(session, workspace_sid)
    if len(owners) > 100_000:
        owners.clear()
    owners[workspace.sid] = workspace.account_sid


def not_found(path: str) -> NotFound:
    return NotFound(f"The requested resource {path} was not found")


# -- responses -------------------------------------------------------------------------------------

def created(body: dict, etag: int | None = None):
    return _json(body, 201, etag)


def ok(body: dict, etag: int | None = None):
    return _json(body, 200, etag)


def deleted():
    return "", 204


def _json(body: dict, status: int, etag: int | None):
    response = jsonify(body)
    response.status_code = status
    if etag is not None:
        response.headers["ETag"] = f'"{etag}"'
    return response


def error_body(code: int, message: str, status: int) -> dict:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


# -- paging ----------------------------------------------------------------------------------------

def page_size() -> int:
    raw = request.args.get("PageSize")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise InvalidParameter("PageSize must be an integer between 1 and 1000") from None
    if size < 1:
        raise InvalidParameter("PageSize must be an integer between 1 and 1000")
    # Larger pages are served at the maximum, as Twilio does: the SDK's list(limit=N) asks for PageSize=N.
    return min(size, MAX_PAGE_SIZE)


def _encode_token(values: list[Any]) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values])
    return "PT" + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_token(token: str, kinds: list[type]) -> list[Any]:
    """The values a PageToken carries, each checked against its column's type: a forged one is a 400."""
    try:
        padded = token[2:] + "=" * (-len(token[2:]) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not token.startswith("PT") or not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError
        return [_token_value(value, kind) for value, kind in zip(values, kinds, strict=True)]
    except (ValueError, TypeError):
        raise InvalidParameter("PageToken is not a token this server issued") from None


def _token_value(value: Any, kind: type) -> Any:
    """One value of a token, if it could be a value of its column (else ValueError): the database never sees junk."""
    if kind is datetime:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        if moment is None or moment.tzinfo is not None:
            raise ValueError
        return moment
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
            raise ValueError
        return value
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError
    return value


def paginate(
    session: Session,
    query,
    *,
    key: str,
    path: str,
    order: list[tuple[Any, bool]],
    represent: Callable[[Any], dict],
    filters: dict[str, Any] | None = None,
    scalars: bool = True,
) -> dict:
    """One page of `query` in Twilio's list shape, with keyset page tokens.

    `order` is the sort, as (column, descending) pairs ending with a unique column; the next page
    starts after the last row's values, so records added meanwhile never shift or repeat a page.
    `Page` without a `PageToken` is read as Twilio's older paging does, `Page` × `PageSize` rows in (it
    used to give page 0's rows labelled with the page asked for); `previous_page_url` uses that form.
    """
    size = page_size()
    number = request.args.get("Page", "0")
    number = int(number) if number.isascii() and number.isdigit() else 0  # "²" is a digit int() refuses
    token = request.args.get("PageToken")
    kinds = [_column_type(column) for column, _ in order]
    if token:
        query = query.where(_after(order, _decode_token(token, kinds)))
    elif number:
        query = query.offset(min(number * size, 2**31))  # Page=10**20 must not overflow the database
    query = query.order_by(*[column.desc() if desc else column.asc() for column, desc in order]).limit(size + 1)
    rows = list(session.scalars(query)) if scalars else list(session.execute(query))
    more = len(rows) > size
    rows = rows[:size]
    echo = {name: value for name, value in (filters or {}).items() if value not in (None, "", [])}

    def page_url(page: int, page_token: str | None) -> str:
        params = [*list(_flatten(echo)), ("PageSize", size), ("Page", page)]
        if page_token:
            params.append(("PageToken", page_token))
        return f"{url_for_path(path)}?{urlencode(params)}"

    next_url = None
    if more:
        last = rows[-1]
        values = [_value_of(last, column) for column, _ in order]
        next_url = page_url(number + 1, _encode_token(values))
    return {
        key: [represent(row) for row in rows],
        "meta": {
            "page": number,
            "page_size": size,
            "first_page_url": page_url(0, None),
            "previous_page_url": page_url(number - 1, None) if number > 0 else None,
            "url": page_url(number, token),
            "next_page_url": next_url,
            "key": key,
        },
    }


def _flatten(params: dict[str, Any]) -> Iterable[tuple[str, Any]]:
    for name, value in params.items():
        if isinstance(value, list):
            for item in value:
                yield name, item
        else:
            yield name, value


def _column_type(column) -> type:
    """datetime, int or str: what a page token may carry for `column` (sids and other text are str)."""
    try:
        kind = column.type.python_type
    except (AttributeError, NotImplementedError):
        return str
    return kind if kind in (datetime, int) else str


def _value_of(row, column):
    if hasattr(row, "_mapping"):
        row = row[0]
    return getattr(row, column.key)


def _after(order: list[tuple[Any, bool]], values: list[Any]):
    """Rows strictly after `values` in `order` (a lexicographic keyset condition)."""
    clauses = []
    for index, (column, desc) in enumerate(order):
        equal = [order[i][0] == values[i] for i in range(index)]
        beyond = column < values[index] if desc else column > values[index]
        clauses.append(and_(*equal, beyond))
    return or_(*clauses)


def select_in_workspace(model, workspace_sid: str):
    return select(model).where(model.workspace_sid == workspace_sid)
