"""The callcenter application: `create_app()` for WSGI servers and tests, `python app.py` to run it."""

from __future__ import annotations

import logging
import os
import sys

from flask import Flask, jsonify
from sqlalchemy import text

from callcenter import api, contact_center, database, logs, metrics, sms, voice, web
from callcenter.config import SettingError, load_config
from callcenter.proxies import TrustedProxyFix, parse_allowed
from callcenter.simulator import cli as simulator_cli


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(load_config())
    if test_config:
        app.config.update(test_config)
    # Behind ngrok or a load balancer, X-Forwarded-Proto/Host give the public URL that callbacks, `url` fields and
    # Twilio's signatures use, and X-Forwarded-For the client's address; believed from FORWARDED_ALLOW_IPS only.
    allowed = app.config["FORWARDED_ALLOW_IPS"]
    app.wsgi_app = TrustedProxyFix(app.wsgi_app, parse_allowed(allowed) if isinstance(allowed, str) else allowed)
    logs.init_app(app)
    database.init_app(app)
    api.register(app)
    metrics.init_app(app)
    contact_center.init_app(app)
    voice.register(app)
    sms.register(app)
    web.register(app)
    simulator_cli.init_app(app)

    @app.get("/health")
    def health():
        """Liveness and database reachability, for load balancers and monitoring."""
        router = database.get_router(app)
        try:
            with router.read() as session:
                session.execute(text("SELECT 1"))
                problem = database.schema_problem(session, router.database_url)
        except Exception as err:  # report, never raise: this endpoint must always answer
            # The driver's message names hosts, users and databases: the log has it, the public answer does not.
            logging.getLogger("callcenter.health").error("health check: the database is unreachable: %s", err)
            return jsonify(status="unavailable", database=router.writer.dialect.name,
                           error=f"the database is unreachable ({type(err).__name__}; see the log)"), 503
        if problem is not None:  # reachable, but every request would fail: keep traffic away
            return jsonify(status="unavailable", database=router.writer.dialect.name, error=problem), 503
        return jsonify(status="ok", database=router.writer.dialect.name)

    return app


if __name__ == "__main__":
    from callcenter.simulator import demo

    try:
        settings = load_config()
        port, host = settings["PORT"], os.environ.get("HOST", "127.0.0.1")
        # Without Twilio credentials: demo mode, the phone simulator standing in for Twilio (see README).
        demo_settings = demo.settings(host, port) if demo.wanted(settings) else {}
        application = create_app({"PORT": port, **demo_settings})
    except SettingError as err:  # a setting is wrong: say which, without a traceback
        sys.exit(f"Error: {err}")
    contact_center.load_at_start(application)
    if demo_settings:
        demo.start(application)
    application.run(host=host, port=port, threaded=True)
