"""The credit benchmark's figures: one result per size and database, its tables, and the JSON file.

Targets (issue 10, on the 2-core machine, at 1,000,000 subjects / 10,000,000 events): incremental
intake >= 5,000 events/s end to end; a full recompute that writes every first score <= 60 s; a
recompute that finds nothing changed <= 30 s.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import Stats, fmt_rate, fmt_ratio, print_table, rate, verdict
from _credit_disk import DiskFigures
from _credit_load import LoadFigures
from _credit_phases import (
    BaselineFigures,
    EngineFigures,
    FloorFigures,
    IntakeFigures,
    PageFigures,
    Profile,
    RecomputeFigures,
)
from _resources import PhaseMemory

TARGET_SUBJECTS = 1_000_000
TARGET_EVENTS = 10_000_000
TARGET_INTAKE = 5_000.0  # events/s end to end, event and change records included, durable
TARGET_PASS1_S = 60.0  # full recompute writing every first score
TARGET_PASS2_S = 30.0  # full recompute, nothing changed
FULL_SIZE = (21_500_000, 50_000_000)  # the district: 14 M population + 7.54 M legal-person records


@dataclass
class RunResult:
    """Everything measured for one size on one database."""

    database: str
    subjects: int
    events: int
    durability: str = ""
    load: LoadFigures = field(default_factory=LoadFigures)
    engine: EngineFigures = field(default_factory=EngineFigures)
    scan_s: float = math.nan
    pass1: RecomputeFigures = field(default_factory=RecomputeFigures)
    floor: FloorFigures = field(default_factory=FloorFigures)
    pass2: RecomputeFigures = field(default_factory=RecomputeFigures)
    intake: IntakeFigures = field(default_factory=IntakeFigures)
    baseline: BaselineFigures = field(default_factory=BaselineFigures)
    page: PageFigures = field(default_factory=PageFigures)
    disk: DiskFigures = field(default_factory=DiskFigures)
    memory: list[PhaseMemory] = field(default_factory=list)
    kernel_peak_mib: tuple[float, float] = (math.nan, math.nan)  # this process, largest child
    notes: list[str] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list, metadata={"json": False})

    @property
    def size(self) -> str:
        """``subjects / events`` in short form."""
        return f"{short_count(self.subjects)}/{short_count(self.events)}"

    def peak(self, attr: str) -> float:
        """The largest value of a :class:`PhaseMemory` figure over the phases."""
        return max((float(getattr(p, attr)) for p in self.memory), default=math.nan)

    def floor_pass1_s(self) -> float:
        """Pass 1's records at the plain ledger's rate: what writing them alone would take."""
        return self.subjects / self.floor.rate if self.floor.records else math.nan


def short_count(n: float) -> str:
    """A count in short form: 21.5M, 500k."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:g}{unit}"
    return f"{n:g}"


# --- one size -----------------------------------------------------------------------------------------


def _at_target(r: RunResult) -> tuple[float, str]:
    """The factor that projects r's seconds to the target size, and how (empty: measured there)."""
    if r.subjects >= TARGET_SUBJECTS and r.events >= TARGET_EVENTS:
        return 1.0, ""
    if abs((r.events / r.subjects) / (TARGET_EVENTS / TARGET_SUBJECTS) - 1) <= 0.1:
        return TARGET_EVENTS / r.events, "linear"
    return math.nan, "other ratio"


def _seconds_vs_target(r: RunResult, seconds: float, target: float) -> tuple[str, bool | None]:
    factor, how = _at_target(r)
    if not how:
        return f"{seconds:,.1f} s", seconds <= target
    if how == "linear":
        return f"{seconds:,.1f} s -> {seconds * factor:,.0f} s", seconds * factor <= target
    return f"{seconds:,.1f} s", None


def _cpu(c: Any) -> str:
    return f"{c.bench_s:,.1f} / " + ("-" if math.isnan(c.server_s) else f"{c.server_s:,.1f}")


def _stats_ms(s: Stats | None) -> str:
    return s.ms() if s is not None and s.count else "n/a"


def _block_rates(r: RunResult) -> str:
    """How the load slowed down as the tables grew."""
    first, last = r.load.decile_rates()
    return "n/a" if math.isnan(first) else f"{first:,.0f} / {last:,.0f}"


def print_size_report(results: Sequence[RunResult], batch: int) -> None:
    """The main table for one size: a column per database, targets and verdicts."""
    first = results[0]
    rows: list[list[str]] = []

    def row(label: str, cells: Sequence[str], target: str = "", verdicts: Sequence[bool | None] = ()) -> None:
        rows.append([label, *cells, target, " / ".join(verdict(v) for v in verdicts) if verdicts else ""])

    def each(fn: Callable[[RunResult], str]) -> list[str]:
        return [fn(r) for r in results]

    row(
        "subjects / events",
        each(lambda r: f"{r.subjects:,} / {r.events:,} ({r.events / r.subjects:.1f} per subject)"),
    )
    row("bulk load (mode)", each(lambda r: f"{r.load.total_s:,.1f} s ({r.load.mode})"))
    row("  events/s, whole load", each(lambda r: fmt_rate(rate(r.events, r.load.total_s), "ev/s")))
    row(
        "  subject refs (HMAC-SM3) / sealing",
        each(lambda r: f"{r.load.refs_s:,.1f} / {r.load.seal_s:,.1f} s"),
    )
    row("  seal one subject, real", each(lambda r: f"{r.load.seal_us:,.0f} us x {r.load.sealed_real:,}"))
    row("  insert subjects", each(lambda r: f"{r.load.subjects_s:,.1f} s"))
    row(
        "  events, wall time (loader processes)",
        each(lambda r: f"{r.load.events_s:,.1f} s ({r.load.load_workers})"),
    )
    row("    generate events (summed over loaders)", each(lambda r: f"{r.load.gen_s:,.1f} s"))
    row(
        "    event records via Ledger.submit (summed)",
        each(lambda r: f"{r.load.records_s:,.1f} s ({fmt_rate(rate(r.load.records, r.load.records_s))})"),
    )
    row(
        "    insert event rows (summed) / rebuild indexes",
        each(lambda r: f"{r.load.insert_s:,.1f} / {r.load.index_s:,.1f} s"),
    )
    row("  load events/s: first / last 10% of blocks", each(_block_rates))
    row(
        "engine alone, us per subject (sample)",
        each(
            lambda r: f"{r.engine.seconds / max(1, r.engine.subjects) * 1e6:,.1f} (n={r.engine.subjects:,})"
        ),
    )
    row(
        "  engine alone, all subjects (extrapolated)", each(lambda r: f"{r.engine.full_s(r.subjects):,.1f} s")
    )
    row("scan floor: read every event row once", each(lambda r: f"{r.scan_s:,.1f} s"))
    cells, verdicts = zip(
        *(_seconds_vs_target(r, r.pass1.seconds, TARGET_PASS1_S) for r in results), strict=True
    )
    row("recompute_all pass 1 (every first score)", cells, f"<= {TARGET_PASS1_S:.0f} s", verdicts)
    row(
        "  subjects/s | changes recorded",
        each(lambda r: f"{rate(r.subjects, r.pass1.seconds):,.0f} | {r.pass1.changed:,}"),
    )
    row("  CPU s: bench + workers / PG backends", each(lambda r: _cpu(r.pass1.cpu)))
    row(
        "  baseline: Ledger.submit of its change documents",
        each(lambda r: f"{fmt_rate(r.floor.rate)} (n={r.floor.records:,}, {r.floor.mean_bytes:,.0f} B)"),
    )
    row("  baseline for every subject", each(lambda r: f"{r.floor_pass1_s():,.1f} s"))
    row(
        "  pass 1 / baseline | / engine",
        each(
            lambda r: (
                f"{fmt_ratio(r.pass1.seconds / r.floor_pass1_s())} | "
                f"{fmt_ratio(r.pass1.seconds / r.engine.full_s(r.subjects))}"
            )
        ),
    )
    cells, verdicts = zip(
        *(_seconds_vs_target(r, r.pass2.seconds, TARGET_PASS2_S) for r in results), strict=True
    )
    row("recompute_all pass 2 (nothing changed)", cells, f"<= {TARGET_PASS2_S:.0f} s", verdicts)
    row(
        "  subjects/s | changes recorded",
        each(lambda r: f"{rate(r.subjects, r.pass2.seconds):,.0f} | {r.pass2.changed:,}"),
    )
    row("  CPU s: bench + workers / PG backends", each(lambda r: _cpu(r.pass2.cpu)))
    row(
        "  pass 2 / scan floor | / engine",
        each(
            lambda r: (
                f"{fmt_ratio(r.pass2.seconds / r.scan_s)} | "
                f"{fmt_ratio(r.pass2.seconds / r.engine.full_s(r.subjects))}"
            )
        ),
    )
    intake = [rate(r.intake.events, r.intake.seconds) for r in results]
    row(
        f"incremental submit_events, batches of {batch:,}",
        [fmt_rate(v, "ev/s") for v in intake],
        f">= {TARGET_INTAKE:,.0f} ev/s",
        [v >= TARGET_INTAKE if not math.isnan(v) else None for v in intake],
    )
    row("  per batch p50 / p99", each(lambda r: _stats_ms(r.intake.batches)))
    row("  ledger records (of which changes)", each(lambda r: f"{r.intake.records:,} ({r.intake.changes:,})"))
    row("  CPU s: bench / PG backends", each(lambda r: _cpu(r.intake.cpu)))
    row(
        "baseline: Ledger.submit, same count and batches",
        each(lambda r: fmt_rate(rate(r.baseline.records, r.baseline.seconds))),
    )
    row("  per batch p50 / p99", each(lambda r: _stats_ms(r.baseline.batches)))
    row(
        "  intake events/s / baseline records/s",
        each(
            lambda r: fmt_ratio(
                rate(r.intake.events, r.intake.seconds) / rate(r.baseline.records, r.baseline.seconds)
            )
        ),
    )
    row("subject's page (assess+history+2 log_access)", each(lambda r: _stats_ms(r.page.page)))
    for call in ("score", "assess", "history", "log_access"):

        def call_ms(r: RunResult, c: str = call) -> str:
            return _stats_ms(r.page.calls.get(c))

        row(f"  {call} p50 / p99", each(call_ms))
    row(
        "  subjects (failed) | events, changes each",
        each(
            lambda r: (
                f"{r.page.subjects:,} ({r.page.failures}) | "
                f"{r.page.events_mean:.1f}, {r.page.changes_mean:.1f}"
            )
        ),
    )
    row(
        "disk per subject | per event",
        each(lambda r: f"{r.disk.per_subject:,.0f} B | {r.disk.per_event:,.0f} B"),
    )
    row("  database in all", each(lambda r: f"{r.disk.database_bytes / 2**30:,.2f} GiB"))
    row(
        "peak memory: tree RSS / PSS",
        each(lambda r: f"{r.peak('tree_rss_mib'):,.0f} / {r.peak('tree_pss_mib'):,.0f} MiB"),
    )
    row(
        "  kernel peak: bench / largest worker",
        each(lambda r: f"{r.kernel_peak_mib[0]:,.0f} / {r.kernel_peak_mib[1]:,.0f} MiB"),
    )
    title = f"credit service, synthetic district: {first.subjects:,} subjects, {first.events:,} events"
    factor, how = _at_target(first)
    if how == "linear":
        title += f" (after '->': projected to {TARGET_EVENTS:,} events, x{factor:,.1f}, linear)"
    elif how:
        title += " (another subject/event ratio than the 1 M / 10 M target: no verdict on the recomputes)"
    print_table(title, ["measure", *[r.database for r in results], "target", "verdict"], rows)


def print_phase_tables(r: RunResult) -> None:
    """Disk per table and memory per phase of one run."""
    rows = [
        [name, f"{t.rows:,}", f"{t.bytes / 2**20:,.1f}", f"{t.bytes / t.rows:,.0f}" if t.rows else "-"]
        for name, t in sorted(r.disk.tables.items(), key=lambda kv: -kv[1].bytes)
        if t.bytes or t.rows
    ]
    print_table(
        f"{r.database} {r.size}: disk per table ({r.disk.method})",
        ["table", "rows", "MiB", "bytes/row"],
        rows,
    )
    kinds = [[k, f"{n:,}", f"{size:,.0f}"] for k, (n, size) in sorted(r.disk.record_kinds.items())]
    print_table(
        f"{r.database} {r.size}: ledger records by kind (mean row size sampled)",
        ["kind", "records", "bytes"],
        kinds,
    )
    mem = [
        [
            p.phase,
            f"{p.seconds:,.1f}",
            f"{p.tree_rss_mib:,.0f}",
            f"{p.tree_pss_mib:,.0f}",
            f"{p.self_rss_mib:,.0f}",
            str(p.processes),
        ]
        for p in r.memory
    ]
    print_table(
        f"{r.database} {r.size}: memory per phase (peaks, MiB; the tree is the bench and its forked workers)",
        ["phase", "s", "tree RSS", "tree PSS", "bench RSS", "processes"],
        mem,
    )


# --- JSON ------------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON-ready: dataclasses as dicts (minus fields marked json=False), NaN as null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("json", True)
        }
        for name in ("total_s", "rate"):
            if hasattr(type(value), name) and isinstance(getattr(type(value), name), property):
                out[name] = _plain(getattr(value, name))
        return out
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def write_json(
    path: str, meta: dict[str, Any], results: Sequence[RunResult], growth_table: dict[str, Any] | None
) -> None:
    """Every figure of the run as JSON (seconds, bytes, MiB; rates per second)."""
    document = {
        "meta": meta,
        "targets": {
            "size": [TARGET_SUBJECTS, TARGET_EVENTS],
            "intake_events_per_s": TARGET_INTAKE,
            "pass1_s": TARGET_PASS1_S,
            "pass2_s": TARGET_PASS2_S,
        },
        "runs": [_plain(r) | {"floor_pass1_s": _plain(r.floor_pass1_s())} for r in results],
        "growth": _plain(growth_table),
    }
    Path(path).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
