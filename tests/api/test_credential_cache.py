"""Verified credentials are remembered briefly, per secret, never in place of checking a different secret."""

from __future__ import annotations

from sqlalchemy import event

from callcenter.routing import accounts


def test_cached_credentials_authenticate_without_reading_the_database(router):
    credentials = accounts.create_account(router, "Cached")
    cache = accounts.CredentialCache()
    assert accounts.authenticate(router, credentials.sid, credentials.secret, cache) == credentials.sid
    statements = []
    event.listen(router.reader, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert accounts.authenticate(router, credentials.sid, credentials.secret, cache) == credentials.sid
    assert statements == []


def test_a_wrong_secret_is_never_answered_from_the_cache(router):
    credentials = accounts.create_account(router, "Cached")
    cache = accounts.CredentialCache()
    accounts.authenticate(router, credentials.sid, credentials.secret, cache)
    assert accounts.authenticate(router, credentials.sid, "not-the-token", cache) is None


def test_cached_credentials_expire(router, monkeypatch):
    credentials = accounts.create_account(router, "Cached")
    cache = accounts.CredentialCache(ttl=30)
    now = [1000.0]
    monkeypatch.setattr(accounts.time, "monotonic", lambda: now[0])
    cache.put(credentials.sid, credentials.secret, credentials.sid)
    assert cache.get(credentials.sid, credentials.secret) == credentials.sid
    now[0] += 31
    assert cache.get(credentials.sid, credentials.secret) is None
