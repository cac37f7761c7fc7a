"""Background jobs of a log service: the sequencer thread and the checkpoint schedule.

The sequencer flushes on size or age (Tessera's batcher): it wakes when enough records arrived or
``max_age_s`` passed, and sequences until nothing is pending. It hears of new records from the
ledger itself (a commit listener), so writers never have to tell it. The APScheduler job issues signed
checkpoints on a fixed interval; it only triggers work, it holds no state.
"""

from __future__ import annotations

import logging
import threading

from apscheduler.schedulers.background import BackgroundScheduler

from ledger.errors import LedgerError
from ledger.log import Ledger

_logger = logging.getLogger(__name__)


class Sequencer:
    """Runs :meth:`Ledger.sequence_all` in a background thread, batching on size or age."""

    def __init__(self, ledger: Ledger, *, batch_size: int, max_age_s: float) -> None:
        self.ledger = ledger
        self.batch_size = batch_size
        self.max_age_s = max_age_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._since_flush = 0
        self._thread: threading.Thread | None = None

    def notify(self, new_records: int) -> None:
        """Records arrived (the ledger calls this after each commit); a full batch wakes the
        sequencer before its age timer."""
        self._since_flush += new_records
        if self._since_flush >= self.batch_size:
            self._wake.set()

    def start(self) -> None:
        """Start the background thread and listen for the ledger's new records."""
        self.ledger.add_commit_listener(self.notify)
        self._thread = threading.Thread(target=self._run, name="trustledger-sequencer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current batch (a batch is one transaction, so stopping never half-writes)."""
        self.ledger.remove_commit_listener(self.notify)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.wait(self.max_age_s if failures == 0 else min(30.0, self.max_age_s * 2**failures))
            self._wake.clear()
            self._since_flush = 0
            try:
                self.ledger.sequence_all(self.batch_size)
                failures = 0
            except LedgerError as e:
                failures = min(failures + 1, 8)
                _logger.warning("sequencing failed; will retry", extra={"error": e.diagnostics()})


def start_checkpoint_scheduler(ledger: Ledger, interval_s: float) -> BackgroundScheduler:
    """An APScheduler that issues a checkpoint every ``interval_s`` seconds when the tree grew."""
    scheduler = BackgroundScheduler(daemon=True)

    def issue() -> None:
        try:
            ledger.issue_checkpoint()
        except LedgerError as e:
            _logger.warning("checkpoint failed; will retry", extra={"error": e.diagnostics()})

    scheduler.add_job(issue, "interval", seconds=interval_s, id="checkpoint", max_instances=1, coalesce=True)
    scheduler.start()
    return scheduler
