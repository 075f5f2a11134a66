"""`GET /openapi.json`: the OpenAPI 3 document of the TaskRouter API this server actually serves.

It is Twilio's own TaskRouter v1 document (shipped next to this module), cut down to the
operations the Flask app has routes for, so it can never promise an endpoint that is missing;
`servers` names this server, and every operation declares Twilio's error body for 4xx answers.
"""

from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from pathlib import Path

from flask import Flask, current_app, jsonify

from . import bp
from .wire import base_url

REFERENCE = Path(__file__).with_name("taskrouter_v1.openapi.json")
METHODS = ("get", "post", "delete")
ERROR_SCHEMA_NAME = "twilio.error"
# Operations this server adds to TaskRouter's (OpenAPI path -> path item); their modules register them here.
EXTRA_PATHS: dict[str, dict] = {}
ERROR_SCHEMA = {
    "type": "object",
    "description": "Every 4xx answer: Twilio's error code, a message, a link to the code's page and the HTTP status.",
    "required": ["code", "message", "more_info", "status"],
    "properties": {
        "code": {"type": "integer", "description": "Twilio's error code, such as 20001, 20404 or 20409."},
        "message": {"type": "string"},
        "more_info": {"type": "string", "format": "uri"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "The HTTP status, repeated."},
    },
}
_VARIABLE = re.compile(r"<[^>]+>|\{[^}]+\}")


@lru_cache(maxsize=1)
def reference_document() -> dict:
    """Twilio's TaskRouter v1 OpenAPI document, as published."""
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


def path_shape(path: str) -> str:
    """A path with each variable as `{}`: Flask's `/TaskQueues/<queue_sid>` and OpenAPI's `/TaskQueues/{Sid}` agree."""
    return _VARIABLE.sub("{}", path)


# Rules that exist only to answer 405 (api/statistics.py): not operations.
NOT_ALLOWED_ENDPOINT = ".not_allowed_"


def served_operations(app: Flask) -> set[tuple[str, str]]:
    """(path shape, lower-case method) of every route the app serves under /v1."""
    return {(path_shape(rule.rule), method.lower())
            for rule in app.url_map.iter_rules()
            if rule.rule.startswith("/v1/") and NOT_ALLOWED_ENDPOINT not in rule.endpoint
            for method in rule.methods or () if method.lower() in METHODS}


def build_document(app: Flask) -> dict:
    """The reference document narrowed to `app`'s routes, with the error body on every 4xx (no `servers` yet)."""
    document = copy.deepcopy(reference_document())
    document["paths"].update(copy.deepcopy(EXTRA_PATHS))
    served = served_operations(app)
    paths, tags = {}, set()
    for path, item in document["paths"].items():
        operations = {method: item[method] for method in METHODS
                      if method in item and (path_shape(path), method) in served}
        if not operations:
            continue
        for operation in operations.values():
            operation["responses"]["4XX"] = {
                "description": "Twilio's error body",
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}}},
            }
            tags.update(operation.get("tags", ()))
        # Path-level `servers` would point clients back at taskrouter.twilio.com: only the top-level one stays.
        paths[path] = {key: value for key, value in item.items() if key not in (*METHODS, "servers")} | operations
    document["paths"] = paths
    document["tags"] = [tag for tag in document.get("tags", []) if tag["name"] in tags]
    document["components"]["schemas"][ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    document["info"]["description"] = ("The TaskRouter v1 API as this server implements it: Twilio's published "
                                       "document, narrowed to the operations served here.")
    return document


def document_for(app: Flask, server_url: str) -> dict:
    """The document with `servers` set to `server_url`; the narrowed document is built once per app."""
    if "openapi" not in app.extensions:
        app.extensions["openapi"] = build_document(app)
    return {**app.extensions["openapi"], "servers": [{"url": server_url, "description": "this server"}]}


def serve_document():
    return jsonify(document_for(current_app, base_url()))


# The document lives outside /v1, so it needs no credentials: register it on the app itself.
bp.record_once(lambda state: state.app.add_url_rule("/openapi.json", "openapi_document", serve_document,
                                                     methods=["GET"]))
