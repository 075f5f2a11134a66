"""Where callbacks may go: the server's own network is off limits unless the operator allows it.

Anyone who may set a workflow's AssignmentCallbackUrl or a workspace's EventCallbackUrl makes this
server send requests to an address of their choosing. On a server shared by several accounts, or
on a cloud host, that reaches what only the server should: the instance metadata service
(169.254.169.254, which hands out credentials), databases and admin pages on the private network.

A `CallbackPolicy` names the blocked networks. It is enforced twice:

- when a URL is saved, a literal address (or `localhost`) in a blocked network is refused with a
  clear error, so the mistake shows where it was made;
- when a callback is sent, on the address the connection is actually made to, after DNS
  resolution, so a name that resolves (or later re-resolves) to a blocked address is caught too.
  Such a callback is not retried: it can only fail the same way. Redirects are not followed.

Origins the operator configured (the app's own CALLBACK_BASE_URL) are trusted whatever their
address: the voice app receives its assignment callbacks on 127.0.0.1.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidParameter

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Link-local addresses: every cloud's instance metadata service (169.254.169.254, AWS's fd00:ec2::254).
METADATA = ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128")
# Everything that is not the public internet: this host, private ranges, carrier-grade NAT, link-local,
# unique-local IPv6, and the unspecified, multicast and reserved ranges (which reach this host or nothing).
PRIVATE = (
    *METADATA, "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "172.16.0.0/12", "192.0.0.0/24",
    "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "::1/128", "fc00::/7", "ff00::/8",
)
NAMED_NETWORKS = {"metadata": METADATA, "private": PRIVATE, "none": ()}
DEFAULT_BLOCKED = "metadata"
DEFAULT_PORTS = {"http": 80, "https": 443}


class CallbackBlocked(OSError):
    """The callback's destination is in a blocked network: sending it again cannot succeed."""


def parse_networks(text: str | None, setting: str = "CALLBACK_BLOCKED_NETWORKS") -> tuple[Network, ...]:
    """Networks from a comma-separated list of CIDRs, addresses and the names metadata, private, none."""
    networks: list[Network] = []
    for item in (part.strip() for part in (DEFAULT_BLOCKED if text is None else text).split(",")):
        if not item:
            continue
        if item.lower() in NAMED_NETWORKS:
            networks.extend(ipaddress.ip_network(cidr) for cidr in NAMED_NETWORKS[item.lower()])
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{setting}: {item!r} is not a network (e.g. 10.0.0.0/8, fd00::/8) nor one of "
                             f"{', '.join(NAMED_NETWORKS)}") from None
    return tuple(dict.fromkeys(networks))


def ip_of(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address a text names, as the network sees it: an IPv6 zone ("fe80::1%eth0") is no part of it, and
    ::ffff:127.0.0.1 is 127.0.0.1. ValueError when it is no address (a name)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def origin_of(url: str) -> tuple[str, int] | None:
    """(host, port) of an http(s) URL, the host in lower case; None if it is not one."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in DEFAULT_PORTS or not parsed.hostname:
        return None
    try:
        port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    except ValueError:
        return None
    return parsed.hostname.lower(), port


@dataclass(frozen=True)
class CallbackPolicy:
    blocked: tuple[Network, ...] = field(default_factory=lambda: parse_networks(None))
    trusted: frozenset[tuple[str, int]] = frozenset()  # (host, port) of origins sent to whatever their address

    @classmethod
    def from_settings(cls, blocked: str | None, trusted_urls: Iterable[str | None] = ()) -> CallbackPolicy:
        origins = (origin_of(url) for url in trusted_urls if url)
        return cls(parse_networks(blocked), frozenset(origin for origin in origins if origin))

    def network_of(self, address: str) -> Network | None:
        """The blocked network that holds `address`, or None."""
        ip = ip_of(address)
        return next((network for network in self.blocked if ip.version == network.version and ip in network), None)

    def check_url(self, url: str | None, field_name: str) -> str | None:
        """Refuse, when it is saved, a callback URL whose host is a blocked address (or localhost)."""
        origin = origin_of(url) if url else None
        if origin is None or origin in self.trusted:
            return url
        host = origin[0]
        address = "127.0.0.1" if host == "localhost" or host.endswith(".localhost") else host
        try:
            network = self.network_of(address)
        except ValueError:  # a name: checked on the address it resolves to when the callback is sent
            return url
        if network is not None:
            raise InvalidParameter(f"{field_name} may not point at {host}: this server does not send callbacks "
                                   f"to {network} (its own network)")
        return url

    def connect(self, address: tuple[str, int], timeout: Any = socket._GLOBAL_DEFAULT_TIMEOUT,
                source_address: tuple[str, int] | None = None) -> socket.socket:
        """`socket.create_connection`, to the first of the host's addresses outside the blocked networks."""
        host, port = address
        if (host.lower(), port) in self.trusted or not self.blocked:
            return socket.create_connection(address, timeout, source_address)
        refused: list[str] = []
        error: OSError | None = None
        for family, kind, proto, _name, sockaddr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
            network = self.network_of(sockaddr[0])
            if network is not None:
                refused.append(f"{sockaddr[0]} (in {network})")
                continue
            sock = socket.socket(family, kind, proto)
            try:
                if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as err:
                sock.close()
                error = err
        if error is not None:
            raise error
        raise CallbackBlocked(f"{host} is {', '.join(refused)}: this server does not send callbacks to its own "
                              f"network (CALLBACK_BLOCKED_NETWORKS)")


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, policy: CallbackPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = policy.connect  # what HTTPConnection.connect opens its socket with


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, policy: CallbackPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = policy.connect  # TLS is then set up on that socket, for the URL's host name


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, policy: CallbackPolicy) -> None:
        super().__init__()
        self._policy = policy

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_GuardedHTTPConnection, policy=self._policy), req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, policy: CallbackPolicy) -> None:
        super().__init__()
        self._policy = policy

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_GuardedHTTPSConnection, policy=self._policy), req,
                            context=self._context)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None  # urllib then raises the 3xx as an HTTPError, which the transport returns as the response


def opener(policy: CallbackPolicy) -> urllib.request.OpenerDirector:
    """A urllib opener whose every connection goes through `policy.connect`, and that follows no redirect:
    urllib would follow a 302 as a GET without the callback's parameters, to an address of the redirect's
    choosing. Proxies from the environment are not used: through a proxy the destination could not be checked."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects(),
                                       _GuardedHTTPHandler(policy), _GuardedHTTPSHandler(policy))


def blocked_reason(err: BaseException) -> str | None:
    """The message of a CallbackBlocked, also when urllib wrapped it in a URLError; else None."""
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    return str(reason) if isinstance(reason, CallbackBlocked) else None
