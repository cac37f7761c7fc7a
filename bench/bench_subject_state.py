#!/usr/bin/env python
"""Incremental scoring state: what applying an event costs, beside a full ``evaluate``.

In memory, no database: the synthetic district of ``bench_credit.py`` (deterministic from
``--seed``; ``--subjects`` subjects with ``--events`` events, both kinds, the same event mix), its
whole history dated before the intake day 2026-11-21. Each subject's state is built as of the day
before (as a daily job leaves it) and stored with ``to_bytes``. Then, per subject, one new event
dated on the intake day, of a type from the subject's own history:

- **state path**: ``from_bytes`` → ``apply_events`` → ``assess_state`` → ``to_bytes`` (and each
  step alone): what intake will do per event;
- **evaluate path**: ``evaluate(history + event, explain=False)``: what intake does today;
- **build** (``state_from_history``) beside ``evaluate`` over the history: what a full recompute
  pays per subject to write first states;
- **daily job**: ``advance`` 30 days + ``assess_state`` beside ``evaluate`` at that date;
- **back-dated intake**: the new event dated on a random day of the subject's span instead: how
  often the fast path applies, and the cost with the rebuilds;
- **stored form**: bytes per subject, live events and cap credits per subject.

Times are process CPU seconds, best of ``--repeat`` runs; ratios are evaluate / state path. The
machine's load shows in the figures, so compare the columns of one run.

    .venv/bin/python bench/bench_subject_state.py                     # 20,000 subjects, ~1 minute
    .venv/bin/python bench/bench_subject_state.py --subjects 100000 --events 1000000
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import statistics
import sys
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

Subject = tuple[list[Event], SubjectKind]
NO_GC = False


def best(fn: Callable[[], Any], repeat: int) -> float:
    """The least process CPU time of ``repeat`` runs of ``fn``."""
    times = []
    for _ in range(repeat):
        gc.collect()
        if NO_GC:
            gc.disable()
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
        gc.enable()
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
    subjects: list[Subject] = []
    for i in range(n):
        evs = [Event(e[0], e[1], e[2], e[5], e[4], e[3], e[7]) for e in district.events_of(i)]
        subjects.append((evs, district.kind(i)))
    history_events = sum(len(evs) for evs, _ in subjects)
    rnd = random.Random(args.seed)
    yesterday = TODAY - timedelta(days=1)

    def new_event(evs: list[Event], day: date, tag: str) -> Event:
        model = rnd.choice([e for e in evs if not rb.event_types[e.type].ends_listing] or evs)
        return Event(f"{tag}{rnd.getrandbits(80):020x}", model.type, day, model.source, model.quantity)

    fresh = [new_event(evs, TODAY, "n") for evs, _ in subjects]
    first_day = min(e.occurred_on for evs, _ in subjects for e in evs)
    span = (TODAY - first_day).days
    late = [new_event(evs, first_day + timedelta(days=rnd.randrange(span)), "b") for evs, _ in subjects]

    log("building states (untimed warm-up) and checking them against evaluate")
    states = [state_from_history(evs, rb, yesterday, subject=kind) for evs, kind in subjects]
    blobs = [s.to_bytes() for s in states]
    applied = [apply_events(s, rb, TODAY, [ev]) for s, ev in zip(states, fresh, strict=True)]
    for (evs, kind), state, ev in zip(subjects, applied, fresh, strict=True):
        if state is None or assess_state(state, rb, TODAY) != evaluate(
            [*evs, ev], rb, TODAY, subject=kind, explain=False
        ):
            raise SystemExit("the state path disagrees with evaluate: not a benchmark, a bug")
    applied_states = [s for s in applied if s is not None]

    def state_path(blob: bytes, ev: Event) -> bytes:
        state = apply_events(SubjectState.from_bytes(blob), rb, TODAY, [ev])
        if state is None:
            raise SystemExit("in-order intake fell back")
        assess_state(state, rb, TODAY)
        return state.to_bytes()

    def evaluate_path(evs: list[Event], kind: SubjectKind, ev: Event) -> None:
        evaluate([*evs, ev], rb, TODAY, subject=kind, explain=False)

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
    log("timing")
    t: dict[str, float] = {}
    t["evaluate path"] = best(
        run_all(evaluate_path, ((e, k, ev) for (e, k), ev in zip(subjects, fresh, strict=True))), r
    )
    t["state path"] = best(run_all(state_path, zip(blobs, fresh, strict=True)), r)
    t["from_bytes"] = best(run_all(SubjectState.from_bytes, ((b,) for b in blobs)), r)
    t["apply_events"] = best(
        run_all(apply_events, ((s, rb, TODAY, [ev]) for s, ev in zip(states, fresh, strict=True))), r
    )
    t["assess_state"] = best(run_all(assess_state, ((s, rb, TODAY) for s in applied_states)), r)
    t["to_bytes"] = best(run_all(SubjectState.to_bytes, ((s,) for s in applied_states)), r)
    t["evaluate history"] = best(
        run_all(lambda e, k: evaluate(e, rb, yesterday, subject=k, explain=False), subjects), r
    )
    t["state_from_history"] = best(
        run_all(lambda e, k: state_from_history(e, rb, yesterday, subject=k), subjects), r
    )
    later = TODAY + timedelta(days=30)
    t["evaluate +30 days"] = best(
        run_all(lambda e, k: evaluate(e, rb, later, subject=k, explain=False), subjects), r
    )
    t["advance+assess +30 days"] = best(run_all(daily, ((s,) for s in states)), r)
    t["back-dated state path"] = best(
        run_all(back_dated, ((e, k, b, ev) for (e, k), b, ev in zip(subjects, blobs, late, strict=True))), 1
    )
    t["back-dated evaluate path"] = best(
        run_all(evaluate_path, ((e, k, ev) for (e, k), ev in zip(subjects, late, strict=True))), 1
    )

    def us(seconds: float) -> str:
        return f"{seconds / n * 1e6:.1f}"

    def per_s(seconds: float) -> str:
        return f"{n / seconds:,.0f}" if seconds > 0 else "n/a"

    print(f"\ncommit {code_version(('credit',))}, Python {platform.python_version()}, {platform.machine()}")
    print(
        f"{n:,} subjects, {history_events:,} events in their histories ({history_events / n:.1f} per subject)"
    )
    rows = [
        [
            "intake, in order: evaluate(history + event)",
            us(t["evaluate path"]),
            per_s(t["evaluate path"]),
            "1.00x",
        ],
        [
            "intake, in order: from_bytes+apply+assess+to_bytes",
            us(t["state path"]),
            per_s(t["state path"]),
            fmt_ratio(t["evaluate path"] / t["state path"]),
        ],
    ]
    rows += [
        [f"  {k}", us(t[k]), per_s(t[k]), ""]
        for k in ("from_bytes", "apply_events", "assess_state", "to_bytes")
    ]
    rows += [
        [
            "full recompute: evaluate(history)",
            us(t["evaluate history"]),
            per_s(t["evaluate history"]),
            "1.00x",
        ],
        [
            "full recompute: state_from_history",
            us(t["state_from_history"]),
            per_s(t["state_from_history"]),
            fmt_ratio(t["evaluate history"] / t["state_from_history"]),
        ],
        [
            "daily job: evaluate at +30 days",
            us(t["evaluate +30 days"]),
            per_s(t["evaluate +30 days"]),
            "1.00x",
        ],
        [
            "daily job: advance+assess at +30 days",
            us(t["advance+assess +30 days"]),
            per_s(t["advance+assess +30 days"]),
            fmt_ratio(t["evaluate +30 days"] / t["advance+assess +30 days"]),
        ],
        [
            "intake, back-dated: evaluate(history + event)",
            us(t["back-dated evaluate path"]),
            per_s(t["back-dated evaluate path"]),
            "1.00x",
        ],
        [
            f"intake, back-dated: state path ({fallbacks / n:.1%} rebuilt)",
            us(t["back-dated state path"]),
            per_s(t["back-dated state path"]),
            fmt_ratio(t["back-dated evaluate path"] / t["back-dated state path"]),
        ],
    ]
    print_table("CPU per subject (one event each)", ["measure", "us", "per s", "evaluate / this"], rows)

    sizes = sorted(len(s.to_bytes()) for s in applied_states)
    live = [len(s.live) for s in applied_states]
    credits = [sum(len(w.credits) for _k, w in s.caps) for s in applied_states]
    size_rows = [
        ["stored bytes per subject", f"{statistics.fmean(sizes):.0f}", f"{percentile(sizes, 50):.0f}"],
        ["", "", ""],
        ["live events per subject", f"{statistics.fmean(live):.2f}", f"{percentile(sorted(live), 50):.0f}"],
        [
            "cap credits kept per subject",
            f"{statistics.fmean(credits):.2f}",
            f"{percentile(sorted(credits), 50):.0f}",
        ],
    ]
    size_rows[1] = ["  p99 / max bytes", f"{percentile(sizes, 99):.0f}", f"{sizes[-1]}"]
    size_rows.append(["stored MB per 1,000,000 subjects", f"{statistics.fmean(sizes):.0f}", ""])
    print_table("The stored state (after the in-order event)", ["measure", "mean", "p50"], size_rows)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
