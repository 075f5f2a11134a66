"""Connection pool settings reach the engine from the app's configuration."""

from __future__ import annotations

from app import create_app


def test_pool_settings_come_from_the_configuration(database_url):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "RUN_SWEEPER": False, "AUTO_MIGRATE": False,
                      "DATABASE_POOL_SIZE": 3, "DATABASE_MAX_OVERFLOW": 2, "DATABASE_POOL_TIMEOUT": 7,
                      "DATABASE_POOL_RECYCLE": 600})
    router = app.extensions["router"]
    try:
        for engine in {router.writer, router.reader}:
            assert engine.pool.size() == 3
            assert engine.pool._max_overflow == 2
            assert engine.pool._timeout == 7
        if router.writer.dialect.name == "postgresql":
            assert router.writer.pool._pre_ping is True
            assert router.writer.pool._recycle == 600
        assert app.test_client().get("/health").status_code == 200
    finally:
        router.dispose()


def test_pool_defaults_leave_room_for_a_process_threads(database_url):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "RUN_SWEEPER": False, "AUTO_MIGRATE": False})
    router = app.extensions["router"]
    try:
        assert (router.writer.pool.size(), router.writer.pool._max_overflow) == (10, 20)
    finally:
        router.dispose()
