"""Shared fixtures: a ledger on every storage backend (SQLite file and PostgreSQL), API clients.

Also the hypothesis profile every run uses (loaded here, before any test module is imported, so
each ``@settings(...)`` inherits it): no deadline and no ``too_slow`` health check, because both
measure the machine's load, not the code — a busy 2-core CI machine failed the suite with
``FailedHealthCheck`` and passed on re-run. ``HYPOTHESIS_PROFILE=default`` restores hypothesis's
own timing checks for a local look at slow strategies.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from sqlmodel import SQLModel

from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey
from ledger.log import Ledger
from ledger.store import LogStore, make_engine

pytest_plugins = ["tests.anvil"]

LOAD_SENSITIVE_HEALTH_CHECKS = (HealthCheck.too_slow,)
"""The health checks that time the machine; every other check is deterministic and stays on."""
settings.register_profile(
    "ci", deadline=None, suppress_health_check=LOAD_SENSITIVE_HEALTH_CHECKS, print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
PG_URL = os.environ.get("TRUSTLEDGER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SUBJECT_SECRET = b"s" * 32


def _pg_admin_url() -> str:
    return PG_URL.rsplit("/", 1)[0] + "/postgres"


_pg_reason: str | None = None


def pg_unavailable_reason() -> str | None:
    """Why PostgreSQL cannot be used (None when it can); probed once."""
    global _pg_reason
    if _pg_reason is None:
        try:
            engine = sa.create_engine(_pg_admin_url().replace("postgresql://", "postgresql+psycopg://"))
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            engine.dispose()
            _pg_reason = ""
        except Exception as e:  # noqa: BLE001 - any failure means "not reachable"
            _pg_reason = f"PostgreSQL not reachable at {PG_URL}: {type(e).__name__}"
    return _pg_reason or None


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A scratch PostgreSQL database for this test session (dropped at the end)."""
    reason = pg_unavailable_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} — CI must run the PostgreSQL tests")
        pytest.skip(reason)
    name = f"tl_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(
        _pg_admin_url().replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    url: str = request.getfixturevalue("pg_database")
    engine = make_engine(url)
    SQLModel.metadata.drop_all(engine)
    engine.dispose()
    yield url


@pytest.fixture(scope="session")
def log_key() -> Sm2PrivateKey:
    """One SM2 log key for the session (key generation is cheap, but stable ids help debugging)."""
    return Sm2PrivateKey.generate()


LedgerFactory = Callable[..., Ledger]


@pytest.fixture
def make_ledger(database_url: str, log_key: Sm2PrivateKey) -> Iterator[LedgerFactory]:
    """Build ledgers over the same database (several = several service processes)."""
    made: list[Ledger] = []

    def factory(**kwargs: object) -> Ledger:
        options: dict[str, object] = {
            "origin": "test.trustledger.local/log",
            "hash_alg": HashAlgorithm.SM3,
            "signing_key": log_key,
            "subject_secret": SUBJECT_SECRET,
        }
        options.update(kwargs)
        ledger = Ledger(LogStore(make_engine(database_url)), **options)  # type: ignore[arg-type]
        ledger.create_schema()
        made.append(ledger)
        return ledger

    yield factory
    for ledger in made:
        ledger.store.engine.dispose()


@pytest.fixture
def ledger(make_ledger: LedgerFactory) -> Ledger:
    """A fresh ledger on each backend."""
    return make_ledger()
