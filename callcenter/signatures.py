"""Every Twilio webhook proves it came from Twilio: `X-Twilio-Signature`, checked before anything else.

The signature covers the URL Twilio requested. Behind ngrok or a load balancer the app sees another
URL, so two candidates are tried: the URL as rebuilt from the proxy headers (ProxyFix), and the
configured PUBLIC_BASE_URL with the request's path and query.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, request
from twilio.request_validator import RequestValidator

log = logging.getLogger("callcenter.webhooks")


def candidate_urls() -> list[str]:
    urls = [request.url]
    public = current_app.config.get("PUBLIC_BASE_URL")
    if public:
        query = request.query_string.decode()
        urls.append(public.rstrip("/") + request.path + (f"?{query}" if query else ""))
    return urls


def is_from_twilio() -> bool:
    token = current_app.config.get("TWILIO_AUTH_TOKEN")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return False
    validator = RequestValidator(token)
    # Every value of a repeated key is signed; RequestValidator takes the multi-dict as it is.
    params = request.form if request.method == "POST" else {}
    return any(validator.validate(url, params, signature) for url in candidate_urls())


def twilio_webhook(view: Callable[..., Any]) -> Callable[..., Any]:
    """Answer 403 to a request without a valid Twilio signature; run the view otherwise."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if not is_from_twilio():
            log.warning("refused %s %s: missing or invalid X-Twilio-Signature", request.method, request.path)
            return Response("Forbidden: invalid X-Twilio-Signature\n", status=403, mimetype="text/plain")
        return view(*args, **kwargs)

    return checked
