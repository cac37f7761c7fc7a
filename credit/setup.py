"""Opening the credit service from settings, and scheduling its daily jobs.

The composition root for ``credit``: the API's lifespan and the CLI call these; nothing here runs
at import.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from credit.access import load_access_policy
from credit.errors import CreditError
from credit.service import CreditService
from ledger.core.crypto import HashAlgorithm, digest_function
from ledger.keyfiles import KeyFiles, KeyPurpose
from ledger.keys import create_secret, load_secret
from ledger.log import Ledger
from ledger.settings import Settings

_logger = logging.getLogger(__name__)
_MASTER_KEY_DOMAIN = b"trustledger/credit-master/v1\x00"


def local_today(timezone: str) -> Callable[[], date]:
    """A clock giving today's date in ``timezone`` (credit dates are local days)."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise CreditError(f"unknown time zone {timezone!r}", reason="configuration") from e
    return lambda: datetime.now(zone).date()


def master_key(settings: Settings, *, create: bool = False) -> bytes:
    """The 128-bit SM4 master key, derived from the deployment's credit secret file (sealed under the KEK)."""
    path = settings.credit_key_path
    files = KeyFiles.for_settings(settings, create_kek=create)
    if create and not path.exists():
        secret = create_secret(path, files, KeyPurpose.CREDIT_MASTER)
    else:
        secret = load_secret(path, files, KeyPurpose.CREDIT_MASTER)
    return digest_function(HashAlgorithm.SM3)(_MASTER_KEY_DOMAIN + secret)[:16]


def open_credit(
    ledger: Ledger, settings: Settings, *, create: bool = False, today: Callable[[], date] | None = None
) -> CreditService:
    """The credit service over ``ledger``; with ``create`` also its key and tables. The access
    policy is ``<data dir>/credit-access.toml`` when present, else the shipped default. Putting a
    rulebook in force is set-up's explicit step (:meth:`CreditService.ensure_rulebook`)."""
    policy_path = settings.data_dir / "credit-access.toml"
    service = CreditService(
        ledger,
        master_key=master_key(settings, create=create),
        today=today or local_today(settings.timezone),
        access_policy=load_access_policy(policy_path if policy_path.exists() else None),
    )
    if create:
        service.create_schema()
    return service


def schedule_credit_jobs(scheduler: BaseScheduler, service: CreditService, settings: Settings) -> None:
    """Run :meth:`CreditService.run_daily` every day at ``settings.credit_jobs_at`` (local time),
    and once now to catch up after downtime."""
    hour, minute = (int(part) for part in settings.credit_jobs_at.split(":"))

    def daily() -> None:
        try:
            report = service.run_daily()
            _logger.info("credit daily jobs", extra={"report": report.__dict__})
        except Exception:  # a failed run is retried tomorrow (or at the next start); never kill the scheduler
            _logger.exception("credit daily jobs failed")

    trigger = CronTrigger(hour=hour, minute=minute, timezone=ZoneInfo(settings.timezone))
    scheduler.add_job(
        daily, trigger, id="credit-daily", replace_existing=True, coalesce=True, max_instances=1
    )
    scheduler.add_job(daily, id="credit-catch-up", replace_existing=True)
