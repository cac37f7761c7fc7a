#!/usr/bin/env python
"""Incremental scoring state: what applying an event costs, beside a full ``evaluate``.

In memory, no database: the synthetic district of ``bench_credit.py`` (deterministic from
``--seed``; ``--subjects`` subjects with ``--events`` events, both kinds, the same event mix), its
whole history dated before the intake day 2026-11-21. Each subject's state is built as of the day
before (as a daily job leaves it) and stored with ``to_bytes``. Then, per subject, one new event
dated on the intake day, of a type from the subject's own history:

- **state path**: ``from_bytes`` → ``apply_events`` → ``assess_state`` → ``to_bytes`` (and each
  step alone): what intake will do per event, from the stored state;
- **evaluate path**: ``evaluate(history + event, explain=False)`` on events held in memory, and
  the same after building the ``Event`` objects from row tuples (what intake does today once the
  database has returned the subject's rows; the SQL itself is not counted);
- **build** (``state_from_history`` + ``to_bytes``) beside ``evaluate`` over the history: what a
  full recompute pays per subject to write first states;
- **daily job**: ``advance`` 30 days + ``assess_state`` beside ``evaluate`` at that date;
- **back-dated intake**: the new event dated on a random day of the subject's span instead: how
  often the fast path applies, and the cost with the rebuilds (from events in memory);
- **by history size**: the in-order intake paths for subjects grouped by their number of events;
- **stored form**: bytes per subject, live events and cap credits per subject.

Times are process CPU seconds, best of ``--repeat`` runs; ratios are evaluate / state path. The
machine's load shows in the figures, so compare the columns of one run.

    .venv/bin/python bench/bench_subject_state.py                     # 20,000 subjects, ~2 minutes
    .venv/bin/python bench/bench_subject_state.py --subjects 100000 --events 1000000
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import statistics
import time
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from typing import Any

from _common import code_version, fmt_ratio, log, percentile, print_table
from bench_credit import TODAY, District

from credit.engine import Event, evaluate
from credit.identifiers import SubjectKind
from credit.rulebook import default_rulebook
from credit.subject_state import (
    SubjectState,
    advance,
    apply_events,
    assess_state,
    state_from_history,
)

Row = tuple[str, str, date, str, int, date | None, str | None]
SIZES = (1, 2, 3, 5, 10, 20, 50, 100, 10**9)


def best(fn: Callable[[], Any], repeat: int) -> float:
    """The least process CPU time of ``repeat`` runs of ``fn``."""
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def quick(fn: Callable[[], Any], repeat: int) -> float:
    """The least CPU time of ``repeat`` calls of a short ``fn`` (no collection in between)."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def run_all(fn: Callable[..., Any], args: Iterable[tuple[Any, ...]]) -> Callable[[], None]:
    """A timed body: ``fn(*a)`` for every ``a`` (the argument tuples are built beforehand)."""
    prepared = list(args)

    def body() -> None:
        for a in prepared:
            fn(*a)

    return body


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rb = default_rulebook()
    n = args.subjects
    log(f"district of {n:,} subjects / {args.events:,} events (seed {args.seed})")
    district = District(n, args.events, args.seed, rb)
    rows: list[list[Row]] = []
    kinds: list[SubjectKind] = []
    for i in range(n):
        rows.append([(e[0], e[1], e[2], e[5], e[4], e[3], e[7]) for e in district.events_of(i)])
        kinds.append(district.kind(i))
    histories = [[Event(*row) for row in subject_rows] for subject_rows in rows]
    history_events = sum(len(evs) for evs in histories)
    rnd = random.Random(args.seed)
    yesterday = TODAY - timedelta(days=1)

    def new_event(evs: list[Event], day: date, tag: str) -> Event:
        model = rnd.choice([e for e in evs if not rb.event_types[e.type].ends_listing] or evs)
        return Event(f"{tag}{rnd.getrandbits(80):020x}", model.type, day, model.source, model.quantity)

    fresh = [new_event(evs, TODAY, "n") for evs in histories]
    first_day = min(e.occurred_on for evs in histories for e in evs)
    span = (TODAY - first_day).days
    late = [new_event(evs, first_day + timedelta(days=rnd.randrange(span)), "b") for evs in histories]

    log("building states (untimed warm-up) and checking them against evaluate")
    states = [
        state_from_history(evs, rb, yesterday, subject=kind)
        for evs, kind in zip(histories, kinds, strict=True)
    ]
    blobs = [s.to_bytes() for s in states]
    applied = [apply_events(s, rb, TODAY, [ev]) for s, ev in zip(states, fresh, strict=True)]
    for evs, kind, state, ev in zip(histories, kinds, applied, fresh, strict=True):
        expected = evaluate([*evs, ev], rb, TODAY, subject=kind, explain=False)
        if state is None or assess_state(state, rb, TODAY) != expected:
            raise SystemExit("the state path disagrees with evaluate: not a benchmark, a bug")
    applied_states = [s for s in applied if s is not None]

    def state_path(blob: bytes, ev: Event) -> None:
        state = apply_events(SubjectState.from_bytes(blob), rb, TODAY, [ev])
        if state is None:
            raise SystemExit("in-order intake fell back")
        assess_state(state, rb, TODAY)
        state.to_bytes()

    def evaluate_path(evs: list[Event], kind: SubjectKind, ev: Event) -> None:
        evaluate([*evs, ev], rb, TODAY, subject=kind, explain=False)

    def rows_path(subject_rows: list[Row], kind: SubjectKind, ev: Event) -> None:
        evaluate([*(Event(*row) for row in subject_rows), ev], rb, TODAY, subject=kind, explain=False)

    def build(evs: list[Event], kind: SubjectKind) -> None:
        state_from_history(evs, rb, yesterday, subject=kind).to_bytes()

    def daily(state: SubjectState) -> None:
        later = advance(state, rb, TODAY + timedelta(days=30))
        if later is not None:
            assess_state(later, rb, TODAY + timedelta(days=30))

    fallbacks = 0

    def back_dated(evs: list[Event], kind: SubjectKind, blob: bytes, ev: Event) -> None:
        nonlocal fallbacks
        state = apply_events(SubjectState.from_bytes(blob), rb, TODAY, [ev])
        if state is None:
            fallbacks += 1
            state = state_from_history([*evs, ev], rb, TODAY, subject=kind)
        assess_state(state, rb, TODAY)
        state.to_bytes()

    r = args.repeat
    subjects = list(zip(histories, kinds, strict=True))
    log("timing")
    t: dict[str, float] = {}
    t["evaluate"] = best(
        run_all(evaluate_path, ((e, k, ev) for (e, k), ev in zip(subjects, fresh, strict=True))), r
    )
    t["rows"] = best(run_all(rows_path, zip(rows, kinds, fresh, strict=True)), r)
    t["state"] = best(run_all(state_path, zip(blobs, fresh, strict=True)), r)
    t["from_bytes"] = best(run_all(SubjectState.from_bytes, ((b,) for b in blobs)), r)
    t["apply"] = best(
        run_all(apply_events, ((s, rb, TODAY, [ev]) for s, ev in zip(states, fresh, strict=True))), r
    )
    t["assess"] = best(run_all(assess_state, ((s, rb, TODAY) for s in applied_states)), r)
    t["to_bytes"] = best(run_all(SubjectState.to_bytes, ((s,) for s in applied_states)), r)
    t["evaluate history"] = best(
        run_all(lambda e, k: evaluate(e, rb, yesterday, subject=k, explain=False), subjects), r
    )
    t["build"] = best(run_all(build, subjects), r)
    later = TODAY + timedelta(days=30)
    t["evaluate later"] = best(
        run_all(lambda e, k: evaluate(e, rb, later, subject=k, explain=False), subjects), r
    )
    t["daily"] = best(run_all(daily, ((s,) for s in states)), r)
    t["late evaluate"] = best(
        run_all(evaluate_path, ((e, k, ev) for (e, k), ev in zip(subjects, late, strict=True))), 1
    )
    t["late state"] = best(
        run_all(back_dated, ((e, k, b, ev) for (e, k), b, ev in zip(subjects, blobs, late, strict=True))), 1
    )

    log("timing by history size")
    by_size: dict[int, list[float]] = {}
    for (evs, kind), blob, ev, subject_rows in zip(subjects, blobs, fresh, rows, strict=True):
        size = next(s for s in SIZES if len(evs) <= s)
        cell = by_size.setdefault(size, [0, 0.0, 0.0, 0.0])
        cell[0] += 1
        cell[1] += quick(lambda e=evs, k=kind, x=ev: evaluate_path(e, k, x), r)
        cell[2] += quick(lambda e=subject_rows, k=kind, x=ev: rows_path(e, k, x), r)
        cell[3] += quick(lambda b=blob, x=ev: state_path(b, x), r)

    def us(seconds: float) -> str:
        return f"{seconds / n * 1e6:.1f}"

    def per_s(seconds: float) -> str:
        return f"{n / seconds:,.0f}" if seconds > 0 else "n/a"

    def line(label: str, key: str, against: str | None = None) -> list[str]:
        ratio = fmt_ratio(t[against] / t[key]) if against else ""
        return [label, us(t[key]), per_s(t[key]), ratio]

    print(f"\ncommit {code_version(('credit',))}, Python {platform.python_version()}, {platform.machine()}")
    print(
        f"{n:,} subjects, {history_events:,} events in their histories ({history_events / n:.1f} per subject)"
    )
    table = [
        line("intake, in order: evaluate(history + event)", "evaluate"),
        line("  the same, Event objects built from row tuples", "rows"),
        line("intake, in order: from_bytes+apply+assess+to_bytes", "state", "evaluate"),
        line("    against events built from rows", "state", "rows"),
        line("  from_bytes", "from_bytes"),
        line("  apply_events", "apply"),
        line("  assess_state", "assess"),
        line("  to_bytes", "to_bytes"),
        line("full recompute: evaluate(history)", "evaluate history"),
        line("full recompute: state_from_history + to_bytes", "build", "evaluate history"),
        line("daily job: evaluate at +30 days", "evaluate later"),
        line("daily job: advance + assess_state at +30 days", "daily", "evaluate later"),
        line("intake, back-dated: evaluate(history + event)", "late evaluate"),
        line(f"intake, back-dated: state path ({fallbacks / n:.1%} rebuilt)", "late state", "late evaluate"),
    ]
    print_table("CPU per subject (one event each)", ["measure", "us", "per s", "evaluate / this"], table)

    size_table = []
    for size in sorted(by_size):
        count, evaluated, from_rows, stated = by_size[size]
        size_table.append(
            [
                f"<= {size}" if size < SIZES[-1] else f"> {SIZES[-2]}",
                f"{count:,}",
                f"{evaluated / count * 1e6:.1f}",
                f"{from_rows / count * 1e6:.1f}",
                f"{stated / count * 1e6:.1f}",
                fmt_ratio(evaluated / stated),
            ]
        )
    print_table(
        "In-order intake by events in the history (us per subject)",
        ["events", "subjects", "evaluate", "from rows", "state path", "evaluate / state"],
        size_table,
    )

    sizes = sorted(len(s.to_bytes()) for s in applied_states)
    live = sorted(len(s.live) for s in applied_states)
    credits = sorted(sum(len(w.credits) for _k, w in s.caps) for s in applied_states)
    print_table(
        "The stored state (after the in-order event)",
        ["measure", "mean", "p50", "p99", "max"],
        [
            [
                label,
                f"{statistics.fmean(values):.1f}",
                *(f"{percentile(values, q):.0f}" for q in (50, 99)),
                f"{values[-1]}",
            ]
            for label, values in (
                ("stored bytes per subject", sizes),
                ("live events per subject", live),
                ("cap credits kept per subject", credits),
            )
        ],
    )
    print(f"stored states in all: {sum(sizes) / n * 1e6 / 2**20:,.0f} MiB per 1,000,000 subjects of this mix")


if __name__ == "__main__":
    main()
