"""Which peers' `X-Forwarded-*` headers are believed: a proxy's (ngrok, nginx, a load balancer), never a client's.

Behind a proxy, `X-Forwarded-Proto`/`Host`/`Port` give the public URL that Twilio's signatures, callbacks and
`url` fields use, and `X-Forwarded-For` the client's address that sign-in limits count by. Sent by a client that
reaches the app directly, the same headers would let it pick the address it is counted under. So, as gunicorn's
`forwarded_allow_ips` does, they are applied only to requests whose peer is in `FORWARDED_ALLOW_IPS` (by default
this machine: ngrok's agent and a proxy on the same host), and stripped from the others. A peer on a unix socket
(gunicorn `-b unix:...`, which sets no address) is a proxy on this machine: believed, as gunicorn believes it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from werkzeug.middleware.proxy_fix import ProxyFix

from callcenter.routing.callback_network import ip_of

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_ALLOWED = "127.0.0.1,::1"
_FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT",
              "HTTP_X_FORWARDED_PREFIX")


def parse_allowed(value: str) -> tuple[Network, ...] | None:
    """`*` (every peer: None), or addresses and CIDRs separated by commas; ValueError names the bad one."""
    value = value.strip()
    if value == "*":
        return None
    networks = []
    for part in (piece.strip() for piece in value.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or network") from None
    return tuple(networks)


class TrustedProxyFix:
    """ProxyFix (one proxy hop) for requests from an allowed peer; the forwarded headers removed for the rest."""

    def __init__(self, app, allowed: Iterable[Network] | None) -> None:
        self.app = app
        self.fixed = ProxyFix(app, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=0)
        self.allowed = None if allowed is None else tuple(allowed)

    def trusts(self, peer: str | None) -> bool:
        if self.allowed is None or not peer:  # every peer, or one on a unix socket (no address)
            return True
        try:
            address = ip_of(peer)
        except ValueError:
            return False
        return any(address.version == network.version and address in network for network in self.allowed)

    def __call__(self, environ, start_response):
        if self.trusts(environ.get("REMOTE_ADDR")):
            return self.fixed(environ, start_response)
        for header in _FORWARDED:
            environ.pop(header, None)
        return self.app(environ, start_response)
