"""Accounts and API keys: who may see and change which workspaces.

An account authenticates with its sid and auth token, or with an API key (`SK...` and its
secret), exactly as Twilio's REST API does. Every workspace belongs to one account and is
invisible to the others.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select

from . import validation
from .errors import InvalidParameter, NotFound
from .models import Account, ApiKey
from .router import Router
from .sids import is_sid, new_sid


@dataclass(frozen=True)
class Credentials:
    sid: str
    secret: str


def _hash_secret(salt: str, secret: str) -> str:
    # API key secrets are 32 random bytes, so a fast keyed hash is enough (no password stretching).
    return hmac.new(salt.encode(), secret.encode(), hashlib.sha256).hexdigest()


def create_account(router: Router, friendly_name: str = "Local account", *, sid: str | None = None,
                   auth_token: str | None = None) -> Credentials:
    """Create an account (with the given sid and token, or fresh random ones) and return its credentials."""
    sid = sid or new_sid("AC")
    if not is_sid(sid, "AC"):
        raise InvalidParameter(f"{sid!r} is not an account sid (AC followed by 32 hex digits)")
    auth_token = auth_token or secrets.token_hex(16)
    with router.transaction(None) as tx:
        tx.session.add(Account(sid=sid, friendly_name=friendly_name, auth_token=auth_token, date_created=tx.now))
    return Credentials(sid, auth_token)


def ensure_account(router: Router, sid: str, auth_token: str) -> None:
    """Make the account exist with this token (the one configured in the environment)."""
    with router.transaction(None) as tx:
        account = tx.session.get(Account, sid)
        if account is None:
            tx.session.add(Account(sid=sid, friendly_name="Default account", auth_token=auth_token,
                                   date_created=tx.now))
        elif account.auth_token != auth_token:
            account.auth_token = auth_token


def has_accounts(router: Router, *, besides: tuple[str, ...] = ()) -> bool:
    """Whether any account exists, apart from those in `besides`."""
    with router.read() as session:
        return session.scalar(select(Account.sid).where(Account.sid.not_in(besides)).limit(1)) is not None


def create_api_key(router: Router, account_sid: str, friendly_name: str = "API key") -> Credentials:
    """Create an API key for an account; the secret is shown once and only its hash is kept."""
    validation.friendly_name(friendly_name)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    with router.transaction(None) as tx:
        if tx.session.get(Account, account_sid) is None:
            raise NotFound(f"Account {account_sid} not found")
        key = ApiKey(sid=new_sid("SK"), account_sid=account_sid, friendly_name=friendly_name, secret_salt=salt,
                     secret_hash=_hash_secret(salt, secret), date_created=tx.now)
        tx.session.add(key)
    return Credentials(key.sid, secret)


def list_api_keys(router: Router, account_sid: str | None = None) -> list[ApiKey]:
    """The API keys (all, or one account's), oldest first; their secrets are not kept, so not shown."""
    with router.read() as session:
        query = select(ApiKey).order_by(ApiKey.date_created, ApiKey.sid)
        if account_sid is not None:
            query = query.where(ApiKey.account_sid == account_sid)
        return list(session.scalars(query))


def revoke_api_key(router: Router, key_sid: str) -> ApiKey:
    """Delete an API key: it authenticates no new request (a process that verified it keeps it for up to the
    CredentialCache's 30 s)."""
    with router.transaction(None) as tx:
        key = tx.session.get(ApiKey, key_sid)
        if key is None:
            raise NotFound(f"API key {key_sid} not found")
        tx.session.delete(key)
        return key


class CredentialCache:
    """Recently verified credentials, so that a busy client costs no database read per request.

    Keyed by the username and a hash of the secret (never the secret itself); an entry lives
    `ttl` seconds, so a changed auth token stops working within that time in every process.
    """

    def __init__(self, ttl: float = 30.0, size: int = 4096) -> None:
        self.ttl = ttl
        self._size = size
        self._entries: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, username: str, password: str) -> str | None:
        entry = self._entries.get((username, _fingerprint(password)))
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, username: str, password: str, account_sid: str) -> None:
        with self._lock:
            if len(self._entries) >= self._size:
                self._entries.clear()
            self._entries[(username, _fingerprint(password))] = (account_sid, time.monotonic() + self.ttl)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def authenticate(router: Router, username: str, password: str, cache: CredentialCache | None = None) -> str | None:
    """The account sid these Basic-auth credentials belong to, or None."""
    if cache is not None:
        cached = cache.get(username, password)
        if cached is not None:
            return cached
    account_sid = _authenticate(router, username, password)
    if account_sid is not None and cache is not None:
        cache.put(username, password, account_sid)
    return account_sid


def _authenticate(router: Router, username: str, password: str) -> str | None:
    with router.read() as session:
        if username.startswith("AC"):
            account = session.get(Account, username)
            # As bytes: compare_digest refuses str with non-ASCII characters (a 500, only for sids that exist).
            if account is not None and hmac.compare_digest(account.auth_token.encode(), password.encode()):
                return account.sid
        elif username.startswith("SK"):
            key = session.get(ApiKey, username)
            if key is not None and hmac.compare_digest(key.secret_hash, _hash_secret(key.secret_salt, password)):
                return key.account_sid
    return None


def auth_token_of(router: Router, account_sid: str) -> str | None:
    with router.read() as session:
        account = session.get(Account, account_sid)
        return account.auth_token if account else None
