"""Twilio's 2010-04-01 wire format: resource JSON, paged lists, and error bodies."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import jsonify, request

from callcenter.simulator.calls import Call
from callcenter.simulator.carrier import API_VERSION, rfc2822
from callcenter.simulator.messages import Message
from callcenter.simulator.queues import Member, Queue

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


class RestError(Exception):
    """A Twilio REST error: HTTP status, Twilio error code, message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(error: RestError):
    body = {"code": error.code, "message": error.message,
            "more_info": f"https://www.twilio.com/docs/errors/{error.code}", "status": error.status}
    return jsonify(body), error.status


def not_found() -> RestError:
    return RestError(404, 20404, f"The requested resource {request.path} was not found")


def account_path(account_sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}"


def call_json(call: Call) -> dict:
    base = f"{account_path(call.account_sid)}/Calls/{call.sid}"
    return {
        "account_sid": call.account_sid, "annotation": None, "answered_by": None, "api_version": API_VERSION,
        "caller_name": None, "date_created": rfc2822(call.date_created), "date_updated": rfc2822(call.date_updated),
        "direction": call.direction, "duration": str(call.duration()) if call.end_time else None,
        "end_time": rfc2822(call.end_time), "forwarded_from": None, "from": call.from_, "from_formatted": call.from_,
        "group_sid": None, "parent_call_sid": call.parent_call_sid, "phone_number_sid": None, "price": None,
        "price_unit": "USD", "queue_time": "0", "sid": call.sid, "start_time": rfc2822(call.start_time),
        "status": call.status, "to": call.to, "to_formatted": call.to, "trunk_sid": None, "uri": f"{base}.json",
        "subresource_uris": {name: f"{base}/{name.title().replace('_', '')}.json"
                             for name in ("notifications", "recordings", "events", "payments")},
    }


def queue_json(queue: Queue, now) -> dict:
    return {
        "account_sid": queue.account_sid, "average_wait_time": queue.average_wait_time(now),
        "current_size": len(queue.members), "date_created": rfc2822(queue.date_created),
        "date_updated": rfc2822(queue.date_updated), "friendly_name": queue.friendly_name, "max_size": queue.max_size,
        "sid": queue.sid, "uri": f"{account_path(queue.account_sid)}/Queues/{queue.sid}.json",
        "subresource_uris": {"members": f"{account_path(queue.account_sid)}/Queues/{queue.sid}/Members.json"},
    }


def member_json(queue: Queue, member: Member, now) -> dict:
    return {
        "call_sid": member.call.sid, "date_enqueued": rfc2822(member.date_enqueued),
        "position": queue.position(member), "queue_sid": queue.sid, "wait_time": queue.wait_time(member, now),
        "uri": f"{account_path(queue.account_sid)}/Queues/{queue.sid}/Members/{member.call.sid}.json",
    }


def message_json(message: Message) -> dict:
    base = f"{account_path(message.account_sid)}/Messages/{message.sid}"
    return {
        "account_sid": message.account_sid, "api_version": API_VERSION, "body": message.body,
        "date_created": rfc2822(message.date_created), "date_sent": rfc2822(message.date_sent),
        "date_updated": rfc2822(message.date_updated), "direction": message.direction, "error_code": None,
        "error_message": None, "from": message.from_, "messaging_service_sid": None,
        "num_media": str(len(message.media_urls)), "num_segments": "1", "price": None, "price_unit": "USD",
        "sid": message.sid, "status": message.status, "to": message.to, "uri": f"{base}.json",
        "subresource_uris": {"media": f"{base}/Media.json"},
    }


def page(key: str, records: list[dict]):
    """A 2010-style page: the records under `key`, and relative `*_page_uri`s the SDK follows."""
    try:
        size = min(MAX_PAGE_SIZE, max(1, int(request.args.get("PageSize", DEFAULT_PAGE_SIZE))))
        number = max(0, int(request.args.get("Page", 0)))
    except ValueError:
        raise RestError(400, 20001, "PageSize and Page must be integers") from None
    start = number * size
    chunk = records[start:start + size]
    filters = [(k, v) for k, v in request.args.items(multi=True) if k not in ("PageSize", "Page", "PageToken")]

    def uri(page_number: int) -> str:
        return f"{request.path}?{urlencode([*filters, ('PageSize', size), ('Page', page_number)])}"

    more = start + size < len(records)
    return jsonify({
        key: chunk, "start": start, "end": start + max(len(chunk) - 1, 0), "page": number, "page_size": size,
        "uri": uri(number), "first_page_uri": uri(0), "previous_page_uri": uri(number - 1) if number > 0 else None,
        "next_page_uri": (uri(number + 1) + f"&PageToken=PA{number + 1}") if more else None,
    })
