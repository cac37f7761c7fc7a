#!/usr/bin/env python
"""Benchmark of the credit service on a synthetic district: load, recompute, intake, pages, disk, memory.

Run from the repository root::

    .venv/bin/python bench/bench_credit.py --subjects 2000 --events 20000     # smoke test, both DBs
    .venv/bin/python bench/bench_credit.py                                    # 1,000,000 / 10,000,000
    .venv/bin/python bench/bench_credit.py --sizes 2.7e6:6.25e6,5.4e6:12.5e6,10.75e6:25e6

Per size and database (a SQLite file in a temp dir; a PostgreSQL scratch database), on a fresh
deployment (``init_deployment``, ``open_ledger``, ``CreditService.create_schema``, clock fixed at
2026-11-21):

1. the synthetic district (:mod:`_credit_district`), bulk-loaded (:mod:`_credit_load`): every
   event with its real ``credit_event`` ledger record (``--load ledger``) or only the rows;
2. the engine alone over a sample held in memory, and the scan floor (every event row read once);
3. ``CreditService.recompute_all`` twice: pass 1 writes every first score (a ``credit_change``
   record each), beside ``Ledger.submit`` of the same change documents; pass 2 finds nothing changed;
4. the disk used per table, per subject and per event;
5. incremental intake through ``submit_events``, beside plain ``Ledger.submit`` of as many records
   in the same batches;
6. a subject's page (``assess``, ``history`` and the access records of ``/me`` and ``/me/history``)
   for random subjects: p50/p99;
7. optionally cProfile of recompute and intake.

Memory of the process and its forked workers is sampled per phase (:mod:`_resources`). Before
anything runs the bench estimates the disk the run needs and refuses if the disk cannot hold it.
``--sizes`` runs several sizes (on PostgreSQL unless ``--database`` says otherwise) and prints how
every figure grows with size, projected to ``--project-to`` (the district: 21.5 M / 50 M).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import re
import secrets
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from _common import DEFAULT_PG_URL, code_version, log, pg_server_info, print_table
from _credit_deploy import Deployment, compute_refs, deployment
from _credit_disk import check_disk, measure_disk
from _credit_district import TODAY, District, incremental_batches, mix_summary
from _credit_growth import growth, print_growth
from _credit_load import bulk_load
from _credit_phases import (
    change_floor,
    engine_baseline,
    ledger_baseline,
    page_latency,
    page_sample,
    profiles,
    run_intake,
    scan_floor,
    timed_recompute,
)
from _credit_report import (
    FULL_SIZE,
    TARGET_EVENTS,
    TARGET_SUBJECTS,
    RunResult,
    print_phase_tables,
    print_size_report,
    write_json,
)
from _profiles import print_profile
from _resources import (
    MemorySampler,
    available_memory_mib,
    kernel_peaks_mib,
    load_average,
)

from credit.identifiers import parse_identifier
from credit.rulebook import default_rulebook
from ledger.log import SubjectFamily


def parse_count(text_: str) -> int:
    """``21.5e6``, ``21500000``, ``21.5M`` or ``500k`` as an integer."""
    match = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([kKmMgG]?)\s*", text_)
    if not match:
        raise argparse.ArgumentTypeError(f"not a count: {text_!r}")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2).lower()]
    return round(float(match.group(1)) * scale)


def parse_size(text_: str) -> tuple[int, int]:
    """``SUBJECTS:EVENTS``."""
    subjects, sep, events = text_.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"a size is SUBJECTS:EVENTS, not {text_!r}")
    return parse_count(subjects), parse_count(events)


def parse_sizes(spec: str, target: tuple[int, int]) -> list[tuple[int, int]]:
    """``S:E,S:E,...``, or ``growth:N``: N sizes at the target's ratio, 1/2^N ... 1/2 of the target."""
    if spec.startswith("growth:"):
        n = int(spec.removeprefix("growth:"))
        return [(target[0] >> k, target[1] >> k) for k in range(n, 0, -1)]
    return sorted((parse_size(part) for part in spec.split(",") if part.strip()), key=lambda s: s[1])


def durability(dep: Deployment) -> str:
    """SQLite's journal mode and synchronous setting (PostgreSQL's are on the server line)."""
    if dep.database != "sqlite":
        return "see server line"
    mode = dep.scalar("PRAGMA journal_mode")
    sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(int(dep.scalar("PRAGMA synchronous") or 0), "?")
    return f"SQLite {sqlite3.sqlite_version} journal_mode={mode}, synchronous={sync}"


def run_database(
    database: str,
    district: District,
    args: argparse.Namespace,
    secret: str,
    sampler: MemorySampler,
    refs_s: list[float],
) -> RunResult:
    """Every phase for one size on one database."""
    r = RunResult(database, district.subjects, district.events)
    mark = len(sampler.phases)
    max_pending = district.events + 4 * district.subjects + 8 * args.incremental_events + 1_000_000
    with deployment(
        database,
        workdir=args.workdir,
        pg_url=args.pg_url,
        keep=args.keep,
        secret=secret,
        max_pending=max_pending,
    ) as dep:
        r.durability = durability(dep)
        service = dep.service
        rulebook = service.active_rulebook()
        if not district.refs:
            log(f"computing {district.subjects:,} subject references (HMAC-SM3)")
            with sampler.phase(f"{database}: subject references"):
                refs_s.append(compute_refs(district, dep.ledger))
        elif dep.ledger.subject_ref(district.identifier(0), family=SubjectFamily.CREDIT) != district.ref(0):
            raise SystemExit("bench_credit: the deployments use different subject secrets")
        sample = page_sample(district, args.page_sample, args.seed + 5)
        with sampler.phase(f"{database}: bulk load"):
            r.load = bulk_load(
                dep,
                district,
                mode=args.load,
                seal_budget=args.seal_budget,
                workers=args.load_workers,
                recorded=set(sample) if args.load == "rows" else set(),
            )
        r.load.refs_s = refs_s[0] if refs_s else 0.0
        loaded = dep.count("credit_event")
        if loaded != district.events:
            raise SystemExit(f"bench_credit: {loaded:,} events loaded, expected {district.events:,}")
        log(f"{database}: bulk load: {r.load.total_s:,.1f} s")
        with sampler.phase(f"{database}: engine alone"):
            r.engine = engine_baseline(district, rulebook, args.engine_sample)
        with sampler.phase(f"{database}: scan floor"):
            r.scan_s = scan_floor(dep)
        log(f"{database}: recompute_all pass 1 (every subject gets its first score)")
        with sampler.phase(f"{database}: recompute pass 1"):
            r.pass1 = timed_recompute(dep, district.subjects, "pass 1", args.workers)
        log(f"{database}: pass 1: {r.pass1.seconds:,.1f} s, {r.pass1.changed:,} changes")
        with sampler.phase(f"{database}: baseline of pass 1"):
            r.floor = change_floor(dep, district, args.floor_sample, chunk=5_000)
        log(f"{database}: recompute_all pass 2 (nothing changed)")
        with sampler.phase(f"{database}: recompute pass 2"):
            r.pass2 = timed_recompute(dep, district.subjects, "pass 2", args.workers)
        log(f"{database}: pass 2: {r.pass2.seconds:,.1f} s, {r.pass2.changed:,} changes")
        scored = dep.count("credit_score")
        if scored != district.subjects:
            r.notes.append(f"{scored:,} score rows after recompute_all, expected {district.subjects:,}")
        with sampler.phase(f"{database}: disk sizes"):
            r.disk = measure_disk(dep, district.subjects, district.events)
        batches = incremental_batches(
            district, rulebook, args.incremental_events, args.batch, args.seed + 1, "A"
        )
        log(f"{database}: incremental: {args.incremental_events:,} events via submit_events")
        with sampler.phase(f"{database}: incremental intake"):
            r.intake = run_intake(dep, batches)
        with sampler.phase(f"{database}: Ledger.submit baseline"):
            r.baseline = ledger_baseline(dep, district, batches)
        log(f"{database}: pages of {len(sample):,} random subjects")
        with sampler.phase(f"{database}: subject pages"):
            r.page = page_latency(dep, district, sample)
        if r.page.failures:
            r.notes.append(f"{r.page.failures} of {len(sample)} subject pages failed (see the log)")
        if r.intake.odd:
            r.notes.append(f"{r.intake.odd} intake outcomes were duplicates or had no score")
        if r.load.sealed_real < district.subjects:
            r.notes.append(
                f"sealing all {district.subjects:,} subjects would take about "
                f"{r.load.seal_us * district.subjects / 1e6:,.0f} s "
                f"(> --seal-budget {args.seal_budget:,.0f} s): {r.load.sealed_real:,} sealed for real, "
                "the rest store copies of one subject's sealed fields"
            )
        if args.profile_subjects > 0:
            with sampler.phase(f"{database}: profiles"):
                r.profiles = profiles(
                    dep,
                    district,
                    rulebook,
                    subjects=args.profile_subjects,
                    events=args.profile_events,
                    batch=args.batch,
                    seed=args.seed + 2,
                )
            if args.profile_dir:
                folder = Path(args.profile_dir)
                folder.mkdir(parents=True, exist_ok=True)
                for number, (_label, _s, st) in enumerate(r.profiles):
                    st.dump_stats(str(folder / f"credit-{database}-{district.subjects}-{number + 1}.pstats"))
    r.memory = sampler.phases[mark:]
    r.kernel_peak_mib = kernel_peaks_mib()
    return r


def describe_district(district: District, seconds: float) -> None:
    """Events per subject by kind, and the realised type mix."""
    table = district.count_percentiles((50, 90, 99))
    rows = [
        [
            label,
            f"{d['subjects']:,}",
            f"{d['events']:,}",
            f"{d['mean']:.2f}",
            str(d["p50"]),
            str(d["p90"]),
            str(d["p99"]),
            f"{d['max']:,}",
        ]
        for label, d in table.items()
    ]
    print_table(
        f"district: {district.subjects:,} subjects, {district.events:,} events, "
        f"{district.org_share:.0%} organizations ({seconds:,.1f} s to draw kinds and counts)",
        ["subjects", "count", "events", "mean", "p50", "p90", "p99", "max"],
        rows,
    )
    counter, total = mix_summary(district)
    mix = [[name, f"{100 * c / total:.2f}%"] for name, c in counter.most_common()]
    half = (len(mix) + 1) // 2
    paired = [[*mix[k], *(mix[k + half] if k + half < len(mix) else ["", ""])] for k in range(half)]
    print_table(
        f"event type mix (first {min(20_000, district.subjects):,} subjects, {total:,} events)",
        ["type", "share", "type ", "share "],
        paired,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see bench/README.md)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument(
        "--database", choices=("sqlite", "postgres", "both"), help="default: both; postgres with --sizes"
    )
    p.add_argument("--subjects", type=parse_count, default=TARGET_SUBJECTS)
    p.add_argument("--events", type=parse_count, default=TARGET_EVENTS)
    p.add_argument(
        "--sizes", help="several sizes in one run: S:E,S:E,... or growth:N (N halvings of --project-to)"
    )
    p.add_argument(
        "--project-to", type=parse_size, default=FULL_SIZE, help="S:E the growth table projects to"
    )
    p.add_argument("--org-share", type=float, default=0.07, help="organizations among the subjects, by head")
    p.add_argument(
        "--load", choices=("ledger", "rows"), default="ledger", help="events with or without ledger records"
    )
    p.add_argument("--load-workers", type=int, default=2, help="processes loading events (PostgreSQL)")
    p.add_argument("--incremental-events", type=parse_count, default=20_000)
    p.add_argument("--batch", type=int, default=500, help="events per submit_events call")
    p.add_argument("--page-sample", type=int, default=1_000, help="random subjects whose page is timed")
    p.add_argument("--floor-sample", type=int, default=50_000, help="change documents in the pass-1 baseline")
    p.add_argument("--seed", type=int, default=20261121)
    p.add_argument("--workers", type=int, default=2, help="processes for recompute_all (2 cores here)")
    p.add_argument("--workdir", help="where the temp dirs go (default: the system temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the SQLite files and the PG databases")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL, help="any database URL on the PostgreSQL server")
    p.add_argument("--engine-sample", type=int, default=200_000, help="subjects in the engine baseline")
    p.add_argument("--profile-subjects", type=int, help="default 20,000 (0 with --sizes); 0: no profiles")
    p.add_argument("--profile-events", type=int, default=10_000, help="events in the submit_events profile")
    p.add_argument("--profile-top", type=int, default=15)
    p.add_argument("--profile-dir", help="also write the .pstats files here")
    p.add_argument("--seal-budget", type=float, default=60.0, help="seconds of real sealing, then copies")
    p.add_argument("--json", help="write every figure to this file as JSON")
    p.add_argument("--ignore-disk-check", action="store_true", help="run even if the disk estimate says no")
    args = p.parse_args(argv)
    target = args.project_to
    args.size_list = parse_sizes(args.sizes, target) if args.sizes else [(args.subjects, args.events)]
    for subjects, events in args.size_list:
        if subjects < 1 or events < subjects:
            p.error(f"need events >= subjects >= 1 (got {subjects:,}:{events:,})")
    if args.database is None:
        args.database = "postgres" if args.sizes else "both"
    if args.profile_subjects is None:
        args.profile_subjects = 0 if args.sizes else 20_000
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 2 when the disk estimate refuses the run."""
    args = parse_args(argv)
    databases = ["sqlite", "postgres"] if args.database == "both" else [args.database]

    owner = os.getpid()

    def terminate(_signum: int, _frame: Any) -> None:
        # Forked children (the service's recompute pool, the loaders) inherit this handler. A pool
        # is shut down by SIGTERM to its workers: raising there, perhaps while a worker holds the
        # pool's queue lock, can hang its exit and the parent's join with it. Only the bench
        # process turns SIGTERM into a clean exit (which drops its scratch databases).
        if os.getpid() != owner:
            os._exit(143)
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, terminate)
    started = time.perf_counter()
    rulebook = default_rulebook()
    sizes = ", ".join(f"{s:,} / {e:,}" for s, e in args.size_list)
    print(
        f"bench_credit: sizes (subjects / events) {sizes}; {', '.join(databases)}; --load {args.load}; "
        f"{args.incremental_events:,} incremental in batches of {args.batch:,}; seed {args.seed}"
    )
    print(code_version(("credit", "ledger")))
    print(
        f"host: {platform.machine()} cpus={os.cpu_count()}, load {load_average()}, memory available "
        f"{available_memory_mib() / 1024:,.1f} GiB, Python {platform.python_version()}, "
        f"rulebook {rulebook.version}, today {TODAY}"
    )
    if "postgres" in databases:
        print(f"server: {pg_server_info(args.pg_url)}")
    print(
        "NOTE: the bulk load writes credit_subject and credit_event directly (COPY / executemany), not "
        "through submit_events; "
        + (
            "every event gets its credit_event ledger record through Ledger.submit first."
            if args.load == "ledger"
            else "only the page sample's events get ledger records: the others BYPASS THE LEDGER."
        )
    )
    if not check_disk(args, databases, args.size_list):
        return 2
    secret = secrets.token_hex(32)
    sampler = MemorySampler()
    sampler.start()
    results: list[RunResult] = []
    try:
        for subjects, events in args.size_list:
            log(f"generating the district: {subjects:,} subjects, {events:,} events")
            t0 = time.perf_counter()
            with sampler.phase(f"district {subjects:,}"):
                district = District(subjects, events, args.seed, rulebook, args.org_share)
            drawn_s = time.perf_counter() - t0
            for i in range(min(subjects, 2_000)):  # the identifiers are what the API accepts
                parse_identifier(district.identifier(i), today=TODAY)
            describe_district(district, drawn_s)
            refs_s: list[float] = []
            size_results = []
            for database in databases:
                size_results.append(run_database(database, district, args, secret, sampler, refs_s))
                log(f"{database}: {subjects:,} / {events:,} done")
                gc.collect()
            results.extend(size_results)
            for r in size_results:
                for label, seconds, st in r.profiles:
                    print_profile(f"{r.database}: {label}", seconds, st, args.profile_top)
                print_phase_tables(r)
            print_size_report(size_results, args.batch)
            for r in size_results:
                for note in r.notes:
                    print(f"note: {r.database} {r.size}: {note}")
            del district
            gc.collect()
    finally:
        sampler.stop()
    growth_table = None
    if len(args.size_list) > 1:
        growth_table = growth(results, args.project_to)
        print_growth(results, args.project_to, growth_table)
    print(
        "note: pass 1, the baselines and the intake leave their ledger records pending (no sequencer runs); "
        "sequencing is not part of these figures"
    )
    at_target = any(r.subjects >= TARGET_SUBJECTS and r.events >= TARGET_EVENTS for r in results)
    if not at_target:
        print(
            f"note: no run at the target size ({TARGET_SUBJECTS:,} / {TARGET_EVENTS:,}): "
            "the verdicts are projections or n/a"
        )
    print(f"load average at the end: {load_average()} (other work on the machine skews wall times)")
    total = time.perf_counter() - started
    print(f"total wall time {total:,.0f} s")
    if args.json:
        meta = {
            "code": code_version(("credit", "ledger")),
            "host": {
                "cpus": os.cpu_count(),
                "machine": platform.machine(),
                "python": platform.python_version(),
            },
            "server": pg_server_info(args.pg_url) if "postgres" in databases else None,
            "args": {k: v for k, v in vars(args).items() if k != "size_list"} | {"sizes": args.size_list},
            "wall_s": total,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_json(args.json, meta, results, growth_table)
        print(f"figures written to {args.json}")
    return 0 if not any(math.isnan(r.pass1.seconds) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
