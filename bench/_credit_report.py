"""The credit benchmark's figures: one result per size and database, the tables, the growth fit, JSON.

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

from _common import Stats, fmt_rate, fmt_ratio, ms, print_table, rate, verdict
from _credit_load import DiskFigures, LoadFigures
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
        return f"{_short(self.subjects)}/{_short(self.events)}"

    def peak(self, attr: str) -> float:
        """The largest value of a :class:`PhaseMemory` figure over the phases."""
        return max((float(getattr(p, attr)) for p in self.memory), default=math.nan)

    def floor_pass1_s(self) -> float:
        """Pass 1's records at the plain ledger's rate: what writing them alone would take."""
        return self.subjects / self.floor.rate if self.floor.records else math.nan


def _short(n: float) -> str:
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


# --- growth with size -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """A figure followed across sizes; rates are fitted as seconds per item, then turned back."""

    label: str
    value: Callable[[RunResult], float]
    fmt: Callable[[float], str]
    is_rate: bool = False
    intensive: bool = False  # per item or per call, not a total (see fit_and_project)


def _ms(v: float) -> str:
    return f"{ms(v)} ms"


def _secs(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:,.1f} s"


GROWTH_FIGURES = (
    Figure("bulk load", lambda r: r.load.total_s, _secs),
    Figure("recompute pass 1 (first scores)", lambda r: r.pass1.seconds, _secs),
    Figure("recompute pass 2 (nothing changed)", lambda r: r.pass2.seconds, _secs),
    Figure("scan floor", lambda r: r.scan_s, _secs),
    Figure(
        "incremental intake",
        lambda r: rate(r.intake.events, r.intake.seconds),
        lambda v: fmt_rate(v, "ev/s"),
        is_rate=True,
        intensive=True,
    ),
    Figure(
        "baseline Ledger.submit",
        lambda r: rate(r.baseline.records, r.baseline.seconds),
        fmt_rate,
        is_rate=True,
        intensive=True,
    ),
    Figure("page p50", lambda r: r.page.page.p50 if r.page.page else math.nan, _ms, intensive=True),
    Figure("page p99", lambda r: r.page.page.p99 if r.page.page else math.nan, _ms, intensive=True),
    Figure("disk per subject", lambda r: r.disk.per_subject, lambda v: f"{v:,.0f} B", intensive=True),
    Figure("disk per event", lambda r: r.disk.per_event, lambda v: f"{v:,.0f} B", intensive=True),
    Figure("database size", lambda r: r.disk.database_bytes / 2**30, lambda v: f"{v:,.2f} GiB"),
    Figure("peak memory, tree PSS", lambda r: r.peak("tree_pss_mib"), lambda v: f"{v:,.0f} MiB"),
    Figure("peak memory, tree RSS", lambda r: r.peak("tree_rss_mib"), lambda v: f"{v:,.0f} MiB"),
)


def _solve(a: list[list[float]], b: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting; None when singular."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda k: abs(m[k][col]))
        if abs(m[pivot][col]) < 1e-12 * max(1.0, max(abs(x) for x in m[pivot])):
            return None
        m[col], m[pivot] = m[pivot], m[col]
        for k in range(col + 1, n):
            f = m[k][col] / m[col][col]
            for j in range(col, n + 1):
                m[k][j] -= f * m[col][j]
    x = [0.0] * n
    for col in reversed(range(n)):
        x[col] = (m[col][n] - sum(m[col][j] * x[j] for j in range(col + 1, n))) / m[col][col]
    return x


def _line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares intercept and slope, or None when every x is the same."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return my - slope * mx, slope


def fit_and_project(
    points: Sequence[tuple[int, int, float]], target: tuple[int, int], *, intensive: bool = False
) -> tuple[float, str]:
    """Least squares through (subjects, events, y) and the value at ``target``, with the model used.

    Totals (seconds, bytes, MiB): with three or more sizes at different subject/event ratios,
    y = a + b*S + c*E; sizes on one ratio, y = a + b*E (the projection then assumes the target has
    that ratio, and says so when it has not); one size, proportional to E. Intensive figures (rates,
    latencies, bytes per item) grow with the depth of indexes and the share of the data that no
    longer fits in memory, not with the data itself: y = a + b*ln(E), or the largest size's value.
    """
    pts = [(s / 1e6, e / 1e6, y) for s, e, y in points if not (math.isnan(y) or math.isinf(y))]
    ts, te = target[0] / 1e6, target[1] / 1e6
    if not pts:
        return math.nan, "no data"
    far = te / max(e for _s, e, _y in pts)
    suffix = f" (far: x{far:,.0f} the largest size)" if far > 4 else ""
    ratios = [e / s for s, e, _y in pts]
    if abs((te / ts) / (sum(ratios) / len(ratios)) - 1) > 0.05 and max(ratios) / min(ratios) <= 1.05:
        suffix += " (sizes at another ratio than the target)"
    if intensive:
        fitted = _line([math.log(e) for _s, e, _y in pts], [y for _s, _e, y in pts])
        if fitted is None:
            return pts[-1][2], "as at the largest size" + suffix
        value = fitted[0] + fitted[1] * math.log(te)
        if value < 0:  # a falling fit through noisy points: no negative latencies or sizes
            return 0.0, "a + b*ln E, clamped at 0" + suffix
        return value, "a + b*ln E" + suffix
    if len(pts) >= 3 and max(ratios) / min(ratios) > 1.05:
        rows = [[1.0, s, e] for s, e, _y in pts]
        ata = [[sum(r[i] * r[j] for r in rows) for j in range(3)] for i in range(3)]
        aty = [sum(r[i] * y for r, (_s, _e, y) in zip(rows, pts, strict=True)) for i in range(3)]
        coef = _solve(ata, aty)
        if coef is not None:
            return coef[0] + coef[1] * ts + coef[2] * te, "a + b*S + c*E" + suffix
    fitted = _line([e for _s, e, _y in pts], [y for _s, _e, y in pts])
    if fitted is not None:
        return fitted[0] + fitted[1] * te, "a + b*E" + suffix
    s, e, y = pts[-1]
    return y * te / e, "proportional to E" + suffix


def growth_exponent(points: Sequence[tuple[int, int, float]]) -> float:
    """log(y2/y1) / log(E2/E1) between the two largest sizes: 1 is linear, 0 flat."""
    pts = sorted((e, y) for _s, e, y in points if y > 0 and not math.isnan(y))
    if len(pts) < 2 or pts[-1][0] == pts[-2][0]:
        return math.nan
    (e1, y1), (e2, y2) = pts[-2], pts[-1]
    return math.log(y2 / y1) / math.log(e2 / e1)


def growth(results: Sequence[RunResult], target: tuple[int, int]) -> dict[str, dict[str, Any]]:
    """Per database and figure: the values by size, the fitted projection to ``target``, the exponent."""
    out: dict[str, dict[str, Any]] = {}
    for database in dict.fromkeys(r.database for r in results):
        runs = sorted((r for r in results if r.database == database), key=lambda r: r.events)
        figures: dict[str, Any] = {}
        for fig in GROWTH_FIGURES:
            values = [fig.value(r) for r in runs]
            fitted = [1 / v if fig.is_rate and v > 0 else v for v in values]
            points = [(r.subjects, r.events, v) for r, v in zip(runs, fitted, strict=True)]
            measured = next(
                (v for r, v in zip(runs, values, strict=True) if (r.subjects, r.events) == target), None
            )
            projected, model = fit_and_project(points, target, intensive=fig.intensive)
            if fig.is_rate:
                projected = 1 / projected if projected > 0 else math.nan
            figures[fig.label] = {
                "sizes": [[r.subjects, r.events] for r in runs],
                "values": values,
                "projected": measured if measured is not None else projected,
                "model": "measured" if measured is not None else model,
                "exponent": growth_exponent(
                    [(r.subjects, r.events, v) for r, v in zip(runs, values, strict=True)]
                ),
            }
        out[database] = figures
    return out


def print_growth(
    results: Sequence[RunResult], target: tuple[int, int], table: dict[str, dict[str, Any]]
) -> None:
    """How each figure grows with size, and its value at ``target`` (measured or projected)."""
    for database, figures in table.items():
        runs = sorted((r for r in results if r.database == database), key=lambda r: r.events)
        rows = []
        for fig in GROWTH_FIGURES:
            g = figures[fig.label]
            exponent = g["exponent"]
            rows.append(
                [
                    fig.label,
                    *[fig.fmt(v) for v in g["values"]],
                    "n/a" if math.isnan(exponent) else f"{exponent:.2f}",
                    fig.fmt(g["projected"]),
                    g["model"],
                ]
            )
        print_table(
            f"{database}: growth with size, and the figures at {target[0]:,} subjects / {target[1]:,} events",
            [
                "figure",
                *[r.size for r in runs],
                "exponent",
                f"at {_short(target[0])}/{_short(target[1])}",
                "how",
            ],
            rows,
        )
    print(
        "exponent: log(y2/y1)/log(E2/E1) between the two largest sizes (1 = linear in events, "
        ">1 = worse than linear); rates are fitted as seconds per item"
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
