"""The timed phases of the credit benchmark, each against its floor measured in the same run.

Every phase talks to the service only through ``CreditService``'s public methods
(``recompute_all``, ``recompute``, ``submit_events``, ``score``, ``assess``, ``history``,
``log_access``) and to the ledger only through ``Ledger.submit``; the bench's own reads (counts,
the scan floor) go through its own connection.
"""

from __future__ import annotations

import cProfile
import inspect
import math
import multiprocessing
import pstats
import random
import resource
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from _common import Stats, log, rate
from _credit_deploy import Deployment, change_cause, document_submission, submit_records
from _credit_district import TODAY, District, IntakeBatch
from _resources import process_cpu_seconds
from sqlalchemy import text

from credit.access import SELF_QUERY, SUBJECT_ROLE
from credit.engine import Event, evaluate
from credit.rulebook import Rulebook
from ledger.core.leaf import RecordKind

BASELINE_SUBMITTER = "bench"  # plain records of the baselines, apart from the service's "credit"


@dataclass
class Cpu:
    """CPU seconds of a phase: the bench process with its forked workers, and the PG backends."""

    bench_s: float = math.nan
    server_s: float = math.nan


def _own_cpu() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@contextmanager
def measured_cpu(dep: Deployment, poll_s: float = 0.5) -> Iterator[Cpu]:
    """CPU of the code inside: this process and its reaped children, and the database's backends.

    Backends come and go (each forked worker opens its own), so they are polled while the code
    runs; a backend's CPU after its last poll is missed (at most ``poll_s`` of it).
    """
    cpu = Cpu()
    before_server = process_cpu_seconds(dep.backend_pids())
    last_seen = dict(before_server)
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(poll_s):
            with suppress(Exception):
                last_seen.update(process_cpu_seconds(dep.backend_pids()))

    poller = threading.Thread(target=poll, name="backend-cpu", daemon=True)
    if dep.database == "postgres":
        poller.start()
    before = _own_cpu()
    try:
        yield cpu
    finally:
        cpu.bench_s = _own_cpu() - before
        if dep.database == "postgres":
            stop.set()
            poller.join(timeout=5)
            last_seen.update(process_cpu_seconds(dep.backend_pids()))
            cpu.server_s = sum(v - before_server.get(pid, 0.0) for pid, v in last_seen.items())


# --- the engine alone and the scan floor -------------------------------------------------------------


@dataclass
class EngineFigures:
    """``credit.engine.evaluate`` over a sample of subjects held in memory (no database)."""

    subjects: int = 0
    events: int = 0
    seconds: float = math.nan
    cpu_s: float = math.nan

    def full_s(self, subjects: int) -> float:
        """Extrapolated to ``subjects``."""
        return self.seconds * subjects / self.subjects if self.subjects else math.nan


def engine_baseline(district: District, rulebook: Rulebook, sample: int) -> EngineFigures:
    """The pure engine over the events of the first ``sample`` subjects (building them is untimed)."""
    n = min(sample, district.subjects)
    inputs: list[tuple[list[Event], Any]] = []
    events = 0
    for i, generated in district.iter_events(0, n):
        built = [
            Event(e.id, e.type, e.occurred_on, e.source, e.quantity, e.ended_on, e.refers_to)
            for e in generated
        ]
        events += len(built)
        inputs.append((built, district.kind(i)))
    log(f"engine baseline: evaluate() over {n:,} subjects / {events:,} events")
    start, cpu = time.perf_counter(), time.process_time()
    for evs, kind in inputs:
        evaluate(evs, rulebook, TODAY, effects=(), red_list=(), subject=kind)
    return EngineFigures(n, events, time.perf_counter() - start, time.process_time() - cpu)


def scan_floor(dep: Deployment) -> float:
    """Seconds to stream every event row's engine columns once, straight from the driver: the
    database's share of a recompute that reads every event and writes nothing."""
    query = (
        "SELECT subject_ref, id, type, occurred_on, source, quantity, ended_on, refers_to "
        "FROM credit_event ORDER BY subject_ref"
    )
    raw = dep.db.raw_connection()
    start = time.perf_counter()
    try:
        driver = raw.driver_connection
        if driver is None:
            raise RuntimeError("no driver connection")
        cursor = driver.cursor(name="bench_scan") if dep.database == "postgres" else driver.cursor()
        cursor.execute(query)
        rows = 0
        while True:
            chunk = cursor.fetchmany(20_000)
            if not chunk:
                break
            rows += len(chunk)
        cursor.close()
    finally:
        raw.close()
    return time.perf_counter() - start


# --- recompute -----------------------------------------------------------------------------------------


@dataclass
class RecomputeFigures:
    """One ``recompute_all`` pass."""

    seconds: float = math.nan
    changed: int = 0
    cpu: Cpu = field(default_factory=Cpu)


def timed_recompute(dep: Deployment, subjects: int, label: str, workers: int) -> RecomputeFigures:
    """``recompute_all(cause=<kind "bench">)``, with a progress line every ~10% when the service
    reports progress (a ``progress`` callback, called in whichever worker rescored a range)."""
    service = dep.service
    kwargs: dict[str, Any] = {"cause": change_cause("bench"), "workers": workers}
    start = time.perf_counter()
    if "progress" in inspect.signature(service.recompute_all).parameters:
        done = multiprocessing.get_context("fork").Value("q", 0)
        step = max(1, subjects // 10)

        def progress(n: int) -> None:
            with done.get_lock():
                before = done.value
                done.value += n
                after = done.value
            if after // step > before // step:
                elapsed = time.perf_counter() - start
                log(f"{dep.database}:   {label}: {after:,} subjects, {rate(after, elapsed):,.0f} subjects/s")

        kwargs["progress"] = progress
    figures = RecomputeFigures()
    with measured_cpu(dep) as figures.cpu:
        report = service.recompute_all(**kwargs)
    figures.seconds = time.perf_counter() - start
    figures.changed = int(report.changed)
    return figures


@dataclass
class FloorFigures:
    """The plain ledger writing a sample of what pass 1 recorded (one change document per subject)."""

    records: int = 0
    seconds: float = math.nan
    mean_bytes: float = math.nan  # canonical JSON of a change document

    @property
    def rate(self) -> float:
        """Records per second."""
        return rate(self.records, self.seconds)


def change_floor(dep: Deployment, district: District, sample: int, chunk: int) -> FloorFigures:
    """``Ledger.submit`` of ``sample`` of pass 1's change documents, ``chunk`` per call (as
    ``recompute_all`` commits a range per transaction), as plain evidence records: the ledger's own
    cost of pass 1's writes. The documents are read back from the ``credit_change`` records
    themselves (``Ledger.records``), found through the rows' record ids."""
    n = min(sample, district.subjects)
    with dep.db.connect() as conn:
        ids = [
            str(r[0])
            for r in conn.execute(text("SELECT record_id FROM credit_change ORDER BY seq LIMIT :n"), {"n": n})
        ]
    leaves = dep.ledger.records(ids)
    documents = [(leaves[i][1].subject_ref, dict(leaves[i][1].metadata or {})) for i in ids if i in leaves]
    if not documents:
        return FloorFigures()
    subs = [document_submission(RecordKind.EVIDENCE, doc, ref, None) for ref, doc in documents]
    figures = FloorFigures(len(subs))
    figures.mean_bytes = sum(len(leaves[i][1].metadata_json) for i in ids if i in leaves) / len(documents)
    start = time.perf_counter()
    for lo in range(0, len(subs), chunk):
        submit_records(dep.ledger, BASELINE_SUBMITTER, subs[lo : lo + chunk])
    figures.seconds = time.perf_counter() - start
    return figures


# --- incremental intake and its baseline ----------------------------------------------------------------


@dataclass
class IntakeFigures:
    """``submit_events`` of new events for existing subjects."""

    events: int = 0
    seconds: float = math.nan
    batches: Stats | None = None
    records: int = 0  # ledger records written (events and changes)
    changes: int = 0
    odd: int = 0  # outcomes that were duplicates or carried no score
    cpu: Cpu = field(default_factory=Cpu)


def run_intake(dep: Deployment, batches: Sequence[IntakeBatch]) -> IntakeFigures:
    """Only the ``submit_events`` calls are timed, not building the items."""
    figures = IntakeFigures()
    records_before = dep.max_record_seq()
    changes_before = dep.count("credit_change")
    times: list[float] = []
    every = max(1, len(batches) // 5)
    with measured_cpu(dep) as figures.cpu:
        for number, (source, items, _subjects) in enumerate(batches):
            t0 = time.perf_counter()
            outcomes = dep.service.submit_events(source, items)
            times.append(time.perf_counter() - t0)
            figures.events += len(items)
            figures.odd += sum(1 for o in outcomes if o.duplicate or o.score is None)
            if (number + 1) % every == 0:
                log(
                    f"{dep.database}:   intake: {figures.events:,} events, "
                    f"{rate(figures.events, sum(times)):,.0f} events/s"
                )
    figures.seconds = sum(times)
    figures.batches = Stats.of(times)
    figures.records = dep.max_record_seq() - records_before
    figures.changes = dep.count("credit_change") - changes_before
    return figures


@dataclass
class BaselineFigures:
    """Plain ``Ledger.submit`` of as many records as the intake had events, in the same batches."""

    records: int = 0
    seconds: float = math.nan
    batches: Stats | None = None
    cpu: Cpu = field(default_factory=Cpu)


def ledger_baseline(dep: Deployment, district: District, batches: Sequence[IntakeBatch]) -> BaselineFigures:
    """Each record carries the event's document as metadata, its subject reference and an
    idempotency key, as a ``credit_event`` record does; only the ``submit`` calls are timed."""
    prepared = []
    for source, items, subjects in batches:
        subs = []
        for item, i in zip(items, subjects, strict=True):
            document = {"v": 1, "source": source.name} | {k: v for k, v in item.items() if k != "subject"}
            ref = district.ref(i)
            subs.append(
                document_submission(RecordKind.EVIDENCE, document, ref, f"bench:{item['source_ref']}")
            )
        prepared.append(subs)
    figures = BaselineFigures()
    times = []
    with measured_cpu(dep) as figures.cpu:
        for subs in prepared:
            t0 = time.perf_counter()
            submit_records(dep.ledger, BASELINE_SUBMITTER, subs)
            times.append(time.perf_counter() - t0)
            figures.records += len(subs)
    figures.seconds = sum(times)
    figures.batches = Stats.of(times)
    return figures


# --- a subject's page ---------------------------------------------------------------------------------

PAGE_CALLS = ("score", "assess", "history", "log_access")


@dataclass
class PageFigures:
    """What ``GET /v1/credit/me`` and ``/me/history`` cost in the service, per random subject.

    ``/me`` is ``assess`` (score, level, breakdown, lists, reasons from the subject's records) and
    one ``log_access``; ``/me/history`` is ``history`` and one ``log_access``. ``page`` is the sum
    of those four calls; ``score`` (the stored score row alone) is shown beside them.
    """

    subjects: int = 0
    failures: int = 0
    events_mean: float = math.nan
    changes_mean: float = math.nan
    calls: dict[str, Stats] = field(default_factory=dict)
    page: Stats | None = None


def page_latency(dep: Deployment, district: District, sample: Sequence[int]) -> PageFigures:
    """Time the service calls behind a subject's page, for each subject of ``sample`` once."""
    service = dep.service
    times: dict[str, list[float]] = {name: [] for name in PAGE_CALLS}
    pages: list[float] = []
    events = changes = 0
    figures = PageFigures()
    for i in sample:
        ref = district.ref(i)
        try:
            t0 = time.perf_counter()
            service.score(ref)
            t1 = time.perf_counter()
            service.assess(ref)
            t2 = time.perf_counter()
            history = service.history(ref)
            t3 = time.perf_counter()
            for what in ("score", "history"):
                service.log_access(
                    ref, accessor="the subject", role=SUBJECT_ROLE, purpose=SELF_QUERY, what=what
                )
            t4 = time.perf_counter()
        except Exception as e:  # noqa: BLE001 - counted and reported; one failure must not end the run
            figures.failures += 1
            if figures.failures <= 3:
                log(f"{dep.database}: page of subject {i} failed: {type(e).__name__}: {e}")
            continue
        times["score"].append(t1 - t0)
        times["assess"].append(t2 - t1)
        times["history"].append(t3 - t2)
        times["log_access"].append((t4 - t3) / 2)
        pages.append(t4 - t1)
        events += district.counts[i]
        changes += len(history)
    ok = len(pages)
    figures.subjects = ok
    figures.events_mean = events / ok if ok else math.nan
    figures.changes_mean = changes / ok if ok else math.nan
    figures.calls = {name: Stats.of(values) for name, values in times.items()}
    figures.page = Stats.of(pages)
    return figures


def page_sample(district: District, size: int, seed: int) -> list[int]:
    """Random subjects for the page phase (chosen before the load: ``--load rows`` records them)."""
    rng = random.Random(seed)
    return sorted(rng.sample(range(district.subjects), min(size, district.subjects)))


# --- profiles --------------------------------------------------------------------------------------------

Profile = tuple[str, float, pstats.Stats]


def profiled(label: str, fn: Callable[[], Any]) -> Profile:
    """cProfile of one call."""
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    try:
        result = fn()
    finally:
        profiler.disable()
    changed = getattr(result, "changed", None)
    if changed is not None:
        label += f", {changed:,} changes recorded"
    return label, time.perf_counter() - t0, pstats.Stats(profiler)


def delete_scores(dep: Deployment, refs: Sequence[bytes]) -> None:
    """Forget the score rows of ``refs`` (so a recompute does the first-score work again)."""
    with dep.db.begin() as conn:
        for lo in range(0, len(refs), 500):
            chunk = list(refs[lo : lo + 500])
            marks = ", ".join(f":r{k}" for k in range(len(chunk)))
            conn.execute(
                text(f"DELETE FROM credit_score WHERE subject_ref IN ({marks})"),
                {f"r{k}": ref for k, ref in enumerate(chunk)},
            )


def profiles(
    dep: Deployment,
    district: District,
    rulebook: Rulebook,
    *,
    subjects: int,
    events: int,
    batch: int,
    seed: int,
) -> list[Profile]:
    """cProfile of recompute (first score, then unchanged) on the first ``subjects`` and of
    ``submit_events`` on ``events`` more events. Run after the timed phases: they disturb nothing."""
    from _credit_district import incremental_batches

    service = dep.service
    sample = [district.ref(i) for i in range(min(subjects, district.subjects))]
    out = []
    delete_scores(dep, sample)
    log(f"{dep.database}: profiling recompute of {len(sample):,} subjects (first score, then unchanged)")
    out.append(
        profiled(
            f"recompute, first score ({len(sample):,} subjects, as in pass 1)",
            lambda: service.recompute(sample, cause=change_cause("bench-profile")),
        )
    )
    out.append(
        profiled(
            f"recompute, unchanged ({len(sample):,} subjects, as in pass 2)",
            lambda: service.recompute(sample, cause=change_cause("bench-profile")),
        )
    )
    prepared = incremental_batches(district, rulebook, events, batch, seed, "P")
    log(f"{dep.database}: profiling submit_events of {events:,} events")

    def submit_all() -> None:
        for source, items, _subjects in prepared:
            service.submit_events(source, items)

    out.append(profiled(f"submit_events ({events:,} events, batches of {batch:,})", submit_all))
    return out
