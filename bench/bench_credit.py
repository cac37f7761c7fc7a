#!/usr/bin/env python
"""Benchmark of the credit service on a synthetic district: full recompute and incremental intake.

Run from the repository root::

    .venv/bin/python bench/bench_credit.py --subjects 2000 --events 20000      # smoke test, both DBs
    .venv/bin/python bench/bench_credit.py --subjects 100000 --events 1000000  # medium, extrapolated
    .venv/bin/python bench/bench_credit.py                                     # 1,000,000 / 10,000,000

Per database (a SQLite file in a temp dir; a PostgreSQL scratch database), on a fresh deployment
(``init_deployment``, ``open_ledger``, ``CreditService.create_schema``, clock fixed at 2026-11-21):

1. generate a synthetic district (deterministic from ``--seed``) and bulk-load it straight into
   ``credit_subject`` and ``credit_event`` (sqlite3 ``executemany`` / PostgreSQL ``COPY``). This
   load bypasses the ledger: the events get fake record ids and no ledger records;
2. the pure engine (``credit.engine.evaluate``) over a sample of subjects held in memory: the
   baseline, extrapolated to every subject;
3. ``CreditService.recompute_all`` twice: pass 1 gives every subject its first score (one
   ``credit_change`` ledger record and one score row each), pass 2 finds nothing changed;
4. incremental intake: ``CreditService.submit_events`` in batches, end to end through the ledger
   (``credit_event`` and ``credit_change`` records), against plain ``Ledger.submit`` of the same
   number of records in the same run;
5. cProfile of recompute (first score, and unchanged) on a sample of subjects and of
   ``submit_events``: the top functions by cumulative and by own time.

Targets (the issue, on this machine): full recompute of 10,000,000 events <= 120 s; incremental
>= 2,000 events/s end to end. Runs below full scale print the figures projected to 10,000,000
events (linear in events) and say so.
"""

from __future__ import annotations

import argparse
import bisect
import cProfile
import gc
import math
import os
import platform
import pstats
import random
import resource
import secrets
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from _common import (
    DEFAULT_PG_URL,
    Stats,
    code_version,
    fmt_rate,
    fmt_ratio,
    log,
    normalise_pg_url,
    pg_scratch_database,
    pg_server_info,
    print_table,
    rate,
    verdict,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from credit.engine import Event, add_months, evaluate
from credit.identifiers import (
    SubjectKind,
    credit_code_check_char,
    organization_code_check_char,
    parse_identifier,
    resident_id_check_char,
)
from credit.models import ChangeCause
from credit.rulebook import Rulebook, default_rulebook
from credit.service import CreditService, Source, event_id_of
from credit.vault import new_data_key, seal_field, wrap_key
from ledger.core.crypto import HashAlgorithm, digest_function
from ledger.core.leaf import RecordKind, canonical_json
from ledger.log import Ledger, SubjectFamily, Submission
from ledger.service import init_deployment, open_ledger
from ledger.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TODAY = date(2026, 11, 21)
FIRST_DAY = date(2020, 1, 1)
LAST_DAY = date(2026, 11, 20)
FULL_SUBJECTS = 1_000_000
FULL_EVENTS = 10_000_000
TARGET_RECOMPUTE_S = 120.0  # full recompute of 10,000,000 events
TARGET_INCREMENTAL = 2_000.0  # events/s end to end, ledger records included

# --- the district ---------------------------------------------------------------------------------
#
# Subjects: 93% persons, 7% organizations by head count. A district of 1,000,000 residents has
# far fewer legal persons than residents; 7% sits between enterprises alone (a few per cent of
# the population) and every holder of a unified social credit code, individual businesses
# included (over 10%). The plans' 14 M population records vs 7.54 M legal-person records (65/35)
# count records, not subjects: a legal person produces many more records (yearly tax grades,
# risk classes, inspections and penalties). So an organization gets 7x a person's expected
# number of events, which puts about 35% of the events on organizations, as in the plans.
ORG_SHARE = 0.07
ORG_EVENT_FACTOR = 7.0
COUNT_SIGMA = 1.2  # log-normal spread of the events per subject (median well below the mean)
MAX_EVENTS_PER_SUBJECT = 5_000
BLOCK_EVENTS = 500_000  # generated, shuffled and loaded together

# Relative weights of the event types per subject kind (per 10,000 events of that kind). Common:
# volunteer service, social insurance, on-time repayment, blood donation (persons), tax grades and
# risk classes (organizations); late utility fees and simple penalties; serious events rare;
# court defaulter listings about 0.3%.
PERSON_MIX: dict[str, float] = {
    "volunteer_service": 1800,
    "social_insurance_12m": 1800,
    "on_time_repayment_12m": 1500,
    "penalty_simple": 1700,
    "late_utility_fees": 1300,
    "blood_donation": 400,
    "loan_arrears": 300,
    "penalty_general": 250,
    "honour_street": 200,
    "industry_commendation": 120,
    "honour_district": 100,
    "contract_default": 100,
    "adjudged_unpaid_debt": 60,
    "discipline_warning": 60,
    "sued_in_breach": 40,
    "honour_municipal": 40,
    "court_defaulter_listed": 30,
    "administrative_detention": 20,
    "discipline_serious_warning": 20,
    "honour_provincial": 10,
    "licence_suspended": 10,
    "fraud_pyramid_counterfeit": 10,
    "bravery_district": 6,
    "criminal_conviction": 5,
    "discipline_dismissal": 5,
    "utility_theft": 5,
    "bravery_city": 3,
    "licence_revoked_practising": 3,
    "licence_revoked_closure_ban": 3,
    "licensing_fraud": 2,
    "honour_national": 2,
    "bravery_province": 1,
    "bravery_nation": 0.2,
}
ORG_MIX: dict[str, float] = {
    "tax_credit_b": 1500,
    "penalty_simple": 1500,
    "on_time_repayment_12m": 1000,
    "tax_credit_a": 900,
    "late_utility_fees": 900,
    "market_risk_a": 800,
    "penalty_general": 500,
    "contract_default": 350,
    "tax_credit_c": 250,
    "industry_commendation": 200,
    "abnormal_operations_listed": 150,
    "loan_arrears": 150,
    "market_risk_d": 100,
    "sued_in_breach": 100,
    "adjudged_unpaid_debt": 100,
    "honour_street": 60,
    "honour_district": 40,
    "court_defaulter_listed": 30,
    "fraud_pyramid_counterfeit": 30,
    "tax_credit_d": 20,
    "licence_suspended": 20,
    "honour_municipal": 20,
    "licence_revoked_closure_ban": 15,
    "serious_violation_listed": 10,
    "licensing_fraud": 5,
    "utility_theft": 5,
    "licence_revoked_practising": 5,
    "honour_provincial": 5,
    "honour_national": 1,
}
# A listing is followed by its exit (refers_to the listing) with this probability, 3-24 months later.
FOLLOW_UPS: dict[str, tuple[str, float]] = {
    "court_defaulter_listed": ("court_defaulter_delisted", 0.6),
    "tax_credit_d": ("tax_list_exit", 0.3),
    "serious_violation_listed": ("serious_violation_delisted", 0.3),
    "abnormal_operations_listed": ("abnormal_operations_removed", 0.7),
}
# Quantities: stars 1-5, blood in 100 ml units (200/300/400 ml), arrears in monthly cycles.
QUANTITIES: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "volunteer_service": ((1, 2, 3, 4, 5), (35, 30, 18, 11, 6)),
    "blood_donation": ((2, 3, 4), (30, 30, 40)),
    "loan_arrears": (tuple(range(1, 13)), (40, 20, 12, 8, 5, 4, 3, 2, 2, 2, 1, 1)),
}
# The source system (client name) of each source role.
SOURCE_NAMES: dict[str, str] = {
    "approval": "district-approval-system",
    "enforcement": "district-enforcement",
    "court": "district-court",
    "tax": "district-tax-bureau",
    "market_regulation": "district-market-regulation",
    "honours": "district-honours-office",
    "volunteering": "volunteer-platform",
    "blood_donation": "city-blood-centre",
    "utilities": "city-utilities",
    "social_insurance": "social-insurance-agency",
    "finance": "credit-reference-feed",
    "professional": "industry-regulators",
    "discipline": "district-discipline",
    "public_security": "district-public-security",
}
# Region codes: a district of Fuzhou (most residents and registrations), some from elsewhere. The
# city part (digits 3-4) is never a province code, so a resident ID can never also read as a
# valid credit code (parse_identifier would call it ambiguous).
HOME_REGIONS = ("350102", "350103", "350104", "350105", "350111")
OTHER_REGIONS = ("350181", "350121", "350582", "350602", "110105", "310115", "440305", "330106", "510107")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国玉兰文辉鑫宇浩然子涵"
ORG_WORDS = ("闽江", "鼓楼", "榕城", "海峡", "东街", "三坊", "西湖", "屏山", "乌山", "温泉", "五一", "华林")
ORG_TRADES = ("贸易", "科技", "建设", "餐饮", "物流", "医药", "信息", "文化", "电子", "机械", "食品", "咨询")
ORG_FORMS = (("91", "有限公司", 70), ("92", "经营部", 20), ("93", "专业合作社", 2), ("52", "协会", 3))
ORG_FORMS += (("12", "服务中心", 4), ("11", "办公室", 1))
_ORG_BODY = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # the GB 32100 alphabet (no I, O, S, V, Z)


@dataclass(frozen=True)
class TypeGen:
    """How to generate one event type."""

    name: str
    sources: tuple[str, ...]
    quantities: tuple[tuple[int, ...], tuple[float, ...]] | None
    follow_up: tuple[str, float] | None
    arrears: bool


def check_mix(rulebook: Rulebook) -> dict[str, TypeGen]:
    """Every generated type exists, applies to its kind, and respects max_quantity."""
    gens: dict[str, TypeGen] = {}
    for kind, mix in ((SubjectKind.PERSON, PERSON_MIX), (SubjectKind.ORGANIZATION, ORG_MIX)):
        for name in mix:
            et = rulebook.event_types[name]
            if kind not in et.subjects or et.ends_listing:
                raise AssertionError(f"{name} cannot be generated for a {kind.value}")
            q = QUANTITIES.get(name)
            if q is not None and max(q[0]) > et.max_quantity:
                raise AssertionError(f"{name}: quantity above max_quantity {et.max_quantity}")
            follow = FOLLOW_UPS.get(name)
            if follow is not None:
                exit_et = rulebook.event_types[follow[0]]
                if not exit_et.ends_listing or set(exit_et.sources) != set(et.sources):
                    raise AssertionError(f"{follow[0]} must end {name} from the same source")
                if kind not in exit_et.subjects:
                    raise AssertionError(f"{follow[0]} cannot follow for a {kind.value}")
            gens[name] = TypeGen(name, tuple(et.sources), q, follow, name == "loan_arrears")
    for name, (exit_name, _p) in FOLLOW_UPS.items():
        gens[exit_name] = TypeGen(exit_name, gens[name].sources, None, None, False)
    return gens


def _cum(weights: Sequence[float]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


class District:
    """The synthetic district: subjects (kind, identifier, event count) and, per subject, its events.

    Deterministic from the seed. A subject's events come from its own ``random.Random``, so any
    subject's events can be regenerated (the engine baseline holds a sample in memory).
    """

    def __init__(self, subjects: int, events: int, seed: int, rulebook: Rulebook) -> None:
        if events < subjects:
            raise ValueError("every subject has at least one event: --events must be >= --subjects")
        self.subjects = subjects
        self.events = events
        self.seed = seed
        self.gens = check_mix(rulebook)
        self.person_types = list(PERSON_MIX)
        self.person_cum = _cum(list(PERSON_MIX.values()))
        self.org_types = list(ORG_MIX)
        self.org_cum = _cum(list(ORG_MIX.values()))
        self.first_ord = FIRST_DAY.toordinal()
        self.span = LAST_DAY.toordinal() - self.first_ord
        rng = random.Random(seed)
        self.orgs = bytearray(1 if rng.random() < ORG_SHARE else 0 for _ in range(subjects))
        self.counts = self._counts(rng)
        self.identifiers = self._identifiers(rng)
        self.names_seed = seed * 31 + 7
        self.refs: list[bytes] = []

    def _counts(self, rng: random.Random) -> array[int]:
        """At least one event each; the rest spread log-normally (orgs weighted), summing exactly."""
        n, extra = self.subjects, self.events - self.subjects
        weights = [
            min(rng.lognormvariate(0.0, COUNT_SIGMA), 60.0) * (ORG_EVENT_FACTOR if org else 1.0)
            for org in self.orgs
        ]
        scale = extra / sum(weights) if extra else 0.0
        counts = array("I", (min(MAX_EVENTS_PER_SUBJECT, 1 + int(w * scale)) for w in weights))
        left = self.events - sum(counts)
        while left > 0:  # the rounding remainder, to random subjects (weighted by their weight)
            for i in rng.choices(range(n), weights=weights, k=min(left, n)):
                if left and counts[i] < MAX_EVENTS_PER_SUBJECT:
                    counts[i] += 1
                    left -= 1
        return counts

    def _identifiers(self, rng: random.Random) -> list[str]:
        seen: set[str] = set()
        out: list[str] = []
        forms = list(ORG_FORMS)
        form_cum = _cum([f[2] for f in forms])
        birth_first = date(1930, 1, 1).toordinal()
        birth_span = date(2008, 11, 1).toordinal() - birth_first
        for org in self.orgs:
            while True:
                if org:
                    prefix = forms[bisect.bisect_left(form_cum, rng.random() * form_cum[-1])][0]
                    region = rng.choice(HOME_REGIONS) if rng.random() < 0.9 else rng.choice(OTHER_REGIONS)
                    body8 = "".join(rng.choices(_ORG_BODY, k=8))
                    org_code = body8 + organization_code_check_char(body8)
                    body = prefix + region + org_code
                    ident = body + credit_code_check_char(body)
                else:
                    region = rng.choice(HOME_REGIONS) if rng.random() < 0.8 else rng.choice(OTHER_REGIONS)
                    birth = date.fromordinal(birth_first + int(rng.random() * birth_span))
                    body = f"{region}{birth:%Y%m%d}{rng.randrange(1000):03d}"
                    ident = body + resident_id_check_char(body)
                if ident not in seen:
                    seen.add(ident)
                    out.append(ident)
                    break
        return out

    def kind(self, i: int) -> SubjectKind:
        """Subject ``i``'s kind."""
        return SubjectKind.ORGANIZATION if self.orgs[i] else SubjectKind.PERSON

    def name(self, i: int) -> str:
        """A plausible name (only sealed, never used otherwise)."""
        rng = random.Random(self.names_seed * 1_000_003 + i)
        if self.orgs[i]:
            suffix = next(f[1] for f in ORG_FORMS if self.identifiers[i].startswith(f[0]))
            return f"福州市{rng.choice(ORG_WORDS)}{rng.choice(ORG_TRADES)}{suffix}"
        return rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2, 2))))

    def events_of(self, i: int) -> list[tuple[str, str, date, date | None, int, str, str, str | None]]:
        """Subject ``i``'s events as (id, type, occurred_on, ended_on, quantity, source, source_ref,
        refers_to)."""
        rng = random.Random(self.seed * 1_000_003 + i)
        n = self.counts[i]
        if self.orgs[i]:
            types = rng.choices(self.org_types, cum_weights=self.org_cum, k=n)
        else:
            types = rng.choices(self.person_types, cum_weights=self.person_cum, k=n)
        out: list[tuple[str, str, date, date | None, int, str, str, str | None]] = []
        follow: tuple[str, int, str, str] | None = None  # type, day, source, listing id
        first, span, last = self.first_ord, self.span, self.first_ord + self.span
        gens = self.gens
        for j, name in enumerate(types):
            ref = f"D{i:08d}-{j:05d}"
            if follow is not None:
                exit_type, day, source, listing = follow
                follow = None
                out.append(
                    (
                        event_id_of(source, ref),
                        exit_type,
                        date.fromordinal(day),
                        None,
                        1,
                        source,
                        ref,
                        listing,
                    )
                )
                continue
            gen = gens[name]
            day = first + int(span * math.sqrt(rng.random()))  # more events in recent years
            occurred = date.fromordinal(day)
            quantity = 1
            if gen.quantities is not None:
                quantity = rng.choices(gen.quantities[0], weights=gen.quantities[1])[0]
            ended = None
            if gen.arrears:
                end = add_months(occurred, quantity)
                ended = end if end <= LAST_DAY else None
            role = gen.sources[0] if len(gen.sources) == 1 else rng.choice(gen.sources)
            source = SOURCE_NAMES[role]
            event_id = event_id_of(source, ref)
            out.append((event_id, name, occurred, ended, quantity, source, ref, None))
            if gen.follow_up is not None and j + 1 < n and rng.random() < gen.follow_up[1]:
                exit_day = day + rng.randint(91, 730)
                if exit_day <= last:
                    follow = (gen.follow_up[0], exit_day, source, event_id)
        return out


def mix_summary(district: District, sample: int = 20_000) -> tuple[Counter[str], int]:
    """Realised type counts over the first ``sample`` subjects (and their event count)."""
    counter: Counter[str] = Counter()
    total = 0
    for i in range(min(sample, district.subjects)):
        for ev in district.events_of(i):
            counter[ev[1]] += 1
            total += 1
    return counter, total


# --- deployment and bulk load ---------------------------------------------------------------------


@dataclass
class DbResult:
    """Figures of one database."""

    database: str
    durability: str = ""
    subjects: int = 0
    events: int = 0
    ids_s: float = math.nan
    seal_us: float = math.nan
    sealed_real: int = 0
    seal_s: float = 0.0
    subject_insert_s: float = math.nan
    gen_s: float = 0.0
    insert_s: float = 0.0
    index_s: float = 0.0
    engine_sample: int = 0
    engine_sample_events: int = 0
    engine_s: float = math.nan
    engine_cpu_s: float = math.nan
    pass1_s: float = math.nan
    pass1_changed: int = 0
    pass2_s: float = math.nan
    pass2_changed: int = 0
    inc_events: int = 0
    inc_s: float = math.nan
    inc_batches: Stats | None = None
    inc_records: int = 0
    inc_changes: int = 0
    inc_errors: int = 0
    ledger_s: float = math.nan
    ledger_batches: Stats | None = None
    profiles: list[tuple[str, float, pstats.Stats]] = field(default_factory=list)
    rss: list[tuple[str, float, float]] = field(default_factory=list)  # phase, current, process peak
    cpu: dict[str, tuple[float, float]] = field(default_factory=dict)  # phase: (bench, PG backends)
    notes: list[str] = field(default_factory=list)

    @property
    def load_s(self) -> float:
        return self.gen_s + self.insert_s + self.index_s

    @property
    def engine_full_s(self) -> float:
        """The engine alone, extrapolated from the sample to every subject."""
        return self.engine_s * self.subjects / self.engine_sample if self.engine_sample else math.nan


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        current = pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        current = math.nan
    return current, peak


def note_rss(res: DbResult, phase: str) -> None:
    current, peak = rss_mb()
    res.rss.append((phase, current, peak))
    log(f"{res.database}: RSS after {phase}: {current:,.0f} MiB (peak so far {peak:,.0f} MiB)")


def backend_cpu(service: CreditService) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to the bench's database (from /proc)."""
    if service.ledger.store.engine.dialect.name != "postgresql":
        return {}
    with service.ledger.store.engine.connect() as conn:
        pids = conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        ).scalars()
        pids = list(pids)
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return out


@contextmanager
def phase_cpu(service: CreditService, res: DbResult, phase: str) -> Iterator[None]:
    """Record the bench process's CPU and the PG backends' CPU during a phase."""
    before_server = backend_cpu(service)
    before = time.process_time()
    yield
    client = time.process_time() - before
    after_server = backend_cpu(service)
    server = sum(v - before_server.get(pid, 0.0) for pid, v in after_server.items())
    res.cpu[phase] = (client, server if after_server else math.nan)


@contextmanager
def deployment(
    database: str, args: argparse.Namespace, secret: str, max_pending: int
) -> Iterator[tuple[CreditService, str, Path]]:
    """A fresh deployment as the tests build one; removed afterwards unless ``--keep``."""
    base = Path(args.workdir) if args.workdir else None
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"tl-bench-credit-{database}-", dir=base))
    ledger: Ledger | None = None
    try:
        with database_url(database, args, tmp) as url:
            settings = Settings(
                data_dir=tmp / "data",
                database_url=url,
                chain_backend="none",
                subject_secret=secret,
                max_pending=max_pending,
            )
            init_deployment(settings)
            ledger = open_ledger(settings)
            service = CreditService(ledger, master_key=os.urandom(16), today=lambda: TODAY)
            service.create_schema()
            service.ensure_rulebook()
            try:
                yield service, url, tmp
            finally:
                ledger.store.engine.dispose()
    finally:
        if args.keep:
            print(f"kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def database_url(database: str, args: argparse.Namespace, tmp: Path) -> Iterator[str]:
    if database == "sqlite":
        yield f"sqlite:///{tmp / 'trustledger.db'}"
        return
    if not args.keep:
        with pg_scratch_database(args.pg_url, "credit") as url:
            yield url
        return
    url = make_url(normalise_pg_url(args.pg_url))
    name = f"tl_bench_credit_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    print(f"kept: PostgreSQL database {name} (drop it with DROP DATABASE {name})")
    yield url.set(database=name).render_as_string(hide_password=False)


def compute_refs(district: District, ledger: Ledger) -> float:
    """The keyed subject references (HMAC-SM3), as the service computes them."""
    start = time.perf_counter()
    district.refs = [ledger.subject_ref(ident, family=SubjectFamily.CREDIT) for ident in district.identifiers]
    if len(set(district.refs)) != district.subjects:
        raise AssertionError("subject references collide")
    return time.perf_counter() - start


def subject_rows(
    district: District, master_key: bytes, res: DbResult, budget_s: float
) -> Iterator[tuple[Any, ...]]:
    """``credit_subject`` rows, sealed with credit.vault (placeholders past the sealing budget)."""
    now_us = time.time_ns() // 1000
    probe = min(district.subjects, 2_000)
    start = time.perf_counter()
    template: tuple[bytes, bytes, bytes] | None = None
    real_limit = district.subjects
    sealed = 0
    seal_time = 0.0
    for i, ref in enumerate(district.refs):
        if i < real_limit:
            t0 = time.perf_counter()
            data_key = new_data_key()
            wrapped = wrap_key(master_key, data_key, subject_ref=ref)
            ident = seal_field(data_key, district.identifiers[i], subject_ref=ref, field="identifier")
            name = seal_field(data_key, district.name(i), subject_ref=ref, field="name")
            seal_time += time.perf_counter() - t0
            sealed += 1
            if i + 1 == probe:
                res.seal_us = seal_time / probe * 1e6
                if res.seal_us * 1e-6 * district.subjects > budget_s:
                    real_limit = max(probe, 10_000)
            if template is None:
                template = (wrapped, ident, name)
        else:
            assert template is not None
            wrapped, ident, name = template
        kind = "organization" if district.orgs[i] else "person"
        yield (ref, kind, wrapped, ident, name, now_us)
    res.sealed_real = sealed
    res.seal_s = seal_time
    if math.isnan(res.seal_us):
        res.seal_us = seal_time / max(1, sealed) * 1e6
    log(f"subjects: {sealed:,} sealed for real in {time.perf_counter() - start:,.1f} s")


SUBJECT_COLUMNS = ("ref", "kind", "wrapped_key", "sealed_identifier", "sealed_name", "created_at_us")
EVENT_COLUMNS = (
    "id",
    "subject_ref",
    "type",
    "occurred_on",
    "ended_on",
    "quantity",
    "source",
    "source_ref",
    "refers_to",
    "record_id",
    "recorded_at_us",
)


def event_blocks(district: District, res: DbResult) -> Iterator[list[tuple[Any, ...]]]:
    """Blocks of about BLOCK_EVENTS ``credit_event`` rows, shuffled within the block (so a
    subject's events are spread over the table as in one filled over years). Generation time is
    added to ``res.gen_s``."""
    rng = random.Random(district.seed + 99)
    now_us = time.time_ns() // 1000
    block: list[tuple[Any, ...]] = []
    number = 0
    t0 = time.perf_counter()
    for i in range(district.subjects):
        ref = district.refs[i]
        for ev in district.events_of(i):
            block.append(
                (ev[0], ref, ev[1], ev[2], ev[3], ev[4], ev[5], ev[6], ev[7], f"bulk-{number:041x}", now_us)
            )
            number += 1
        if len(block) >= BLOCK_EVENTS or i + 1 == district.subjects:
            rng.shuffle(block)
            res.gen_s += time.perf_counter() - t0
            yield block
            block = []
            t0 = time.perf_counter()


def bulk_load_sqlite(district: District, path: Path, res: DbResult, master_key: bytes, budget: float) -> None:
    """sqlite3 executemany in big transactions; the subject index is rebuilt afterwards."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA cache_size=-1048576")  # 1 GiB page cache for the load
        con.execute("PRAGMA synchronous=OFF")  # a one-off import: durability comes from the final sync
        con.execute("DROP INDEX IF EXISTS ix_credit_event_subject")
        log(f"sqlite: loading {district.subjects:,} subjects")
        start = time.perf_counter()
        con.execute("BEGIN")
        con.executemany(
            f"INSERT INTO credit_subject ({', '.join(SUBJECT_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",
            subject_rows(district, master_key, res, budget),
        )
        con.execute("COMMIT")
        res.subject_insert_s = time.perf_counter() - start - res.seal_s
        log(f"sqlite: loading {district.events:,} events")
        placeholders = ", ".join("?" * len(EVENT_COLUMNS))
        sql = f"INSERT INTO credit_event ({', '.join(EVENT_COLUMNS)}) VALUES ({placeholders})"
        done = 0
        for block in event_blocks(district, res):
            t0 = time.perf_counter()
            con.execute("BEGIN")
            con.executemany(
                sql,
                (
                    (r[0], r[1], r[2], r[3].isoformat(), r[4].isoformat() if r[4] else None, *r[5:])
                    for r in block
                ),
            )
            con.execute("COMMIT")
            res.insert_s += time.perf_counter() - t0
            done += len(block)
            log(f"sqlite:   {done:,} events loaded")
        t0 = time.perf_counter()
        con.execute("CREATE INDEX ix_credit_event_subject ON credit_event (subject_ref)")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        res.index_s = time.perf_counter() - t0
    finally:
        con.close()


def _pg_conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def bulk_load_postgres(district: District, url: str, res: DbResult, master_key: bytes, budget: float) -> None:
    """COPY; the primary keys and the subject index are dropped for the load and rebuilt after it."""
    import psycopg

    with psycopg.connect(_pg_conninfo(url)) as pg:
        cur = pg.cursor()
        cur.execute("SET maintenance_work_mem = '1GB'")
        cur.execute("SET synchronous_commit = off")
        keys = {}
        for table in ("credit_subject", "credit_event"):
            cur.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype = 'p'",
                (table,),
            )
            keys[table] = cur.fetchone()
            cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{keys[table][0]}"')
        cur.execute("DROP INDEX IF EXISTS ix_credit_event_subject")
        pg.commit()
        log(f"postgres: loading {district.subjects:,} subjects")
        start = time.perf_counter()
        with cur.copy(f"COPY credit_subject ({', '.join(SUBJECT_COLUMNS)}) FROM STDIN") as copy:
            for row in subject_rows(district, master_key, res, budget):
                copy.write_row(row)
        pg.commit()
        res.subject_insert_s = time.perf_counter() - start - res.seal_s
        log(f"postgres: loading {district.events:,} events")
        done = 0
        for block in event_blocks(district, res):
            t0 = time.perf_counter()
            with cur.copy(f"COPY credit_event ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
                for row in block:
                    copy.write_row(row)
            pg.commit()
            res.insert_s += time.perf_counter() - t0
            done += len(block)
            log(f"postgres:   {done:,} events loaded")
        t0 = time.perf_counter()
        for table, (name, definition) in keys.items():
            cur.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        cur.execute("CREATE INDEX ix_credit_event_subject ON credit_event (subject_ref)")
        cur.execute("SET synchronous_commit = on")
        pg.commit()
        pg.autocommit = True
        cur.execute("VACUUM (ANALYZE) credit_subject")
        cur.execute("VACUUM (ANALYZE) credit_event")
        res.index_s = time.perf_counter() - t0


def durability(service: CreditService, database: str) -> str:
    if database == "sqlite":
        with service.ledger.store.engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(
                int(conn.exec_driver_sql("PRAGMA synchronous").scalar() or 0), "?"
            )
        return f"SQLite {sqlite3.sqlite_version} journal_mode={mode}, synchronous={sync}"
    return "see server line"


def count(service: CreditService, table: str) -> int:
    with service.ledger.store.engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() or 0)


# --- the measurements -----------------------------------------------------------------------------


def engine_baseline(district: District, rulebook: Rulebook, sample: int, res: DbResult) -> None:
    """The pure engine over the events of the first ``sample`` subjects, held in memory."""
    n = min(sample, district.subjects)
    log(f"{res.database}: engine baseline: building the events of {n:,} subjects in memory (untimed)")
    inputs: list[tuple[list[Event], SubjectKind]] = []
    events = 0
    for i in range(n):
        evs = [Event(e[0], e[1], e[2], e[5], e[4], e[3], e[7]) for e in district.events_of(i)]
        events += len(evs)
        inputs.append((evs, district.kind(i)))
    log(f"{res.database}: engine baseline: evaluate() over {n:,} subjects / {events:,} events")
    start, cpu = time.perf_counter(), time.process_time()
    for evs, kind in inputs:
        evaluate(evs, rulebook, TODAY, effects=(), red_list=(), subject=kind)
    res.engine_s = time.perf_counter() - start
    res.engine_cpu_s = time.process_time() - cpu
    res.engine_sample, res.engine_sample_events = n, events
    del inputs


def timed_recompute(service: CreditService, res: DbResult, label: str, workers: int) -> tuple[float, int]:
    """``recompute_all`` with a progress line every ~10% (counted per worker process)."""
    total = res.subjects
    done = 0
    next_log = total / 10
    start = time.perf_counter()

    def progress(subjects: int) -> None:
        nonlocal done, next_log
        done += subjects
        if done >= next_log:
            elapsed = time.perf_counter() - start
            log(f"{res.database}:   {label}: {done:,} subjects, {rate(done, elapsed):,.0f} subjects/s")
            next_log += total / 10

    report = service.recompute_all(cause=ChangeCause("bench"), workers=workers, progress=progress)
    return time.perf_counter() - start, report.changed


def _role_tables(
    district: District, rulebook: Rulebook
) -> tuple[list[str], list[float], dict[str, tuple[float, dict[str, list[tuple[str, float]]]]]]:
    """Per source role: its share of events, the person share of its events, and its types by kind."""
    person_events = sum(c for c, org in zip(district.counts, district.orgs, strict=True) if not org)
    person_share = person_events / district.events
    roles: dict[str, dict[str, list[tuple[str, float]]]] = {}
    for kind, mix, share in (
        ("person", PERSON_MIX, person_share),
        ("organization", ORG_MIX, 1 - person_share),
    ):
        total = sum(mix.values())
        for name, weight in mix.items():
            sources = rulebook.event_types[name].sources
            for role in sources:
                roles.setdefault(role, {"person": [], "organization": []})[kind].append(
                    (name, weight / total * share / len(sources))
                )
    names = sorted(roles)
    weights = [sum(w for lst in roles[r].values() for _, w in lst) for r in names]
    tables = {}
    for r in names:
        p = sum(w for _, w in roles[r]["person"])
        o = sum(w for _, w in roles[r]["organization"])
        tables[r] = (p / (p + o), roles[r])
    return names, weights, tables


def incremental_batches(
    district: District, rulebook: Rulebook, total: int, batch: int, seed: int, tag: str
) -> list[tuple[Source, list[dict[str, Any]]]]:
    """``total`` new events in batches from one source each, for random existing subjects."""
    rng = random.Random(seed)
    names, weights, tables = _role_tables(district, rulebook)
    persons = [i for i in range(district.subjects) if not district.orgs[i]]
    orgs = [i for i in range(district.subjects) if district.orgs[i]]
    out: list[tuple[Source, list[dict[str, Any]]]] = []
    made = 0
    while made < total:
        role = rng.choices(names, weights=weights)[0]
        person_share, types = tables[role]
        items: list[dict[str, Any]] = []
        for _ in range(min(batch, total - made)):
            kind = "person" if rng.random() < person_share else "organization"
            if not types[kind] or not (persons if kind == "person" else orgs):
                kind = "organization" if kind == "person" else "person"
            pool = persons if kind == "person" else orgs
            i = rng.choice(pool)
            name = rng.choices([t for t, _ in types[kind]], weights=[w for _, w in types[kind]])[0]
            gen = district.gens[name]
            quantity = rng.choices(*gen.quantities)[0] if gen.quantities else 1
            occurred = LAST_DAY - timedelta(days=rng.randrange(60))
            item: dict[str, Any] = {
                "type": name,
                "subject": district.identifiers[i],
                "quantity": quantity,
                "source_ref": f"I{tag}-{made:08d}",
            }
            if gen.arrears:
                item["ended_on"] = occurred.isoformat()
                occurred = add_months(occurred, -quantity)
            item["occurred_on"] = occurred.isoformat()
            items.append(item)
            made += 1
        out.append((Source(SOURCE_NAMES[role], role), items))
    return out


def run_incremental(
    service: CreditService, batches: list[tuple[Source, list[dict[str, Any]]]], res: DbResult
) -> None:
    records_before = service.ledger.store.pending_upper_bound()
    changes_before = count(service, "credit_change")
    times: list[float] = []
    events = 0
    done_log = max(1, len(batches) // 5)
    for number, (source, items) in enumerate(batches):
        t0 = time.perf_counter()
        outcomes = service.submit_events(source, items)
        times.append(time.perf_counter() - t0)
        events += len(items)
        res.inc_errors += sum(1 for o in outcomes if o.duplicate or o.score is None)
        if (number + 1) % done_log == 0:
            log(f"{res.database}:   incremental: {events:,} events, {rate(events, sum(times)):,.0f} events/s")
    res.inc_events = events
    res.inc_s = sum(times)
    res.inc_batches = Stats.of(times)
    res.inc_records = service.ledger.store.pending_upper_bound() - records_before
    res.inc_changes = count(service, "credit_change") - changes_before


def _sm3(data: bytes) -> bytes:
    return digest_function(HashAlgorithm.SM3)(data)


def ledger_baseline(
    service: CreditService,
    district: District,
    batches: list[tuple[Source, list[dict[str, Any]]]],
    res: DbResult,
) -> None:
    """The same number of plain records through ``Ledger.submit``: the event's document as
    metadata, its subject reference and an idempotency key, as a credit_event record has."""
    index = {ident: i for i, ident in enumerate(district.identifiers)}
    subs_batches = []
    for source, items in batches:
        subs = []
        for item in items:
            document = {"v": 1, "source": source.name} | {k: v for k, v in item.items() if k != "subject"}
            subs.append(
                Submission(
                    kind=RecordKind.EVIDENCE,
                    content_hash=_sm3(canonical_json(document)),
                    metadata=document,
                    subject_ref=district.refs[index[item["subject"]]],
                    idempotency_key=f"bench:{item['source_ref']}",
                )
            )
        subs_batches.append(subs)
    times = []
    for subs in subs_batches:
        t0 = time.perf_counter()
        service.ledger.submit("bench", subs)
        times.append(time.perf_counter() - t0)
    res.ledger_s = sum(times)
    res.ledger_batches = Stats.of(times)


def profile_phase(res: DbResult, label: str, fn: Callable[[], Any]) -> None:
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
    res.profiles.append((label, time.perf_counter() - t0, pstats.Stats(profiler)))


def delete_scores(service: CreditService, refs: Sequence[bytes]) -> None:
    """Forget the score rows of ``refs`` (so a recompute does the first-score work again)."""
    from credit.store import SCORES

    with service.ledger.store.engine.begin() as conn:
        for start in range(0, len(refs), 500):
            conn.execute(SCORES.delete().where(SCORES.c.subject_ref.in_(list(refs[start : start + 500]))))


def bench_database(
    database: str, district: District, args: argparse.Namespace, secret: str, max_pending: int
) -> DbResult:
    res = DbResult(database=database, subjects=district.subjects, events=district.events)
    with deployment(database, args, secret, max_pending) as (service, url, tmp):
        res.durability = durability(service, database)
        rulebook = service.active_rulebook()
        if not district.refs:
            log(f"computing {district.subjects:,} subject references (HMAC-SM3)")
            res.ids_s = compute_refs(district, service.ledger)
        elif (
            service.ledger.subject_ref(district.identifiers[0], family=SubjectFamily.CREDIT)
            != district.refs[0]
        ):
            raise AssertionError("the deployments use different subject secrets")
        master_key = service.subjects._master_key  # the bench seals as the service does

        # 1. bulk load (bypasses the ledger) ---------------------------------------------------
        service.ledger.store.engine.dispose()
        if database == "sqlite":
            bulk_load_sqlite(district, tmp / "trustledger.db", res, master_key, args.seal_budget)
        else:
            bulk_load_postgres(district, url, res, master_key, args.seal_budget)
        loaded = count(service, "credit_event")
        if loaded != district.events:
            raise AssertionError(f"{loaded} events loaded, expected {district.events}")
        log(
            f"{database}: bulk load: generate {res.gen_s:,.1f} s, insert {res.insert_s:,.1f} s, "
            f"index {res.index_s:,.1f} s: {rate(district.events, res.load_s):,.0f} events/s"
        )
        note_rss(res, "bulk load")

        # 2. engine baseline ---------------------------------------------------------------------
        engine_baseline(district, rulebook, args.engine_sample, res)
        log(f"{database}: engine: {res.engine_s:,.1f} s for {res.engine_sample:,} subjects")
        note_rss(res, "engine baseline")

        # 3. full recompute, twice ------------------------------------------------------------------
        log(f"{database}: recompute_all pass 1 (every subject gets its first score)")
        with phase_cpu(service, res, "pass 1"):
            res.pass1_s, res.pass1_changed = timed_recompute(service, res, "pass 1", args.workers)
        log(f"{database}: pass 1: {res.pass1_s:,.1f} s, {res.pass1_changed:,} changes")
        note_rss(res, "recompute pass 1")
        log(f"{database}: recompute_all pass 2 (nothing changed)")
        with phase_cpu(service, res, "pass 2"):
            res.pass2_s, res.pass2_changed = timed_recompute(service, res, "pass 2", args.workers)
        log(f"{database}: pass 2: {res.pass2_s:,.1f} s, {res.pass2_changed:,} changes")
        note_rss(res, "recompute pass 2")
        scored = count(service, "credit_score")
        if scored != district.subjects:
            res.notes.append(f"{scored:,} score rows after recompute_all, expected {district.subjects:,}")

        # 4. incremental --------------------------------------------------------------------------
        batches = incremental_batches(
            district, rulebook, args.incremental_events, args.batch, args.seed + 1, "A"
        )
        log(f"{database}: incremental: {args.incremental_events:,} events via submit_events")
        with phase_cpu(service, res, "incremental"):
            run_incremental(service, batches, res)
        note_rss(res, "incremental")
        log(f"{database}: baseline: {args.incremental_events:,} records via Ledger.submit")
        with phase_cpu(service, res, "Ledger.submit"):
            ledger_baseline(service, district, batches, res)

        # 5. profiles (after the timed phases, so they disturb nothing) ------------------------------
        if args.profile_subjects > 0:
            sample = district.refs[: min(args.profile_subjects, district.subjects)]
            delete_scores(service, sample)
            log(f"{database}: profiling recompute of {len(sample):,} subjects (first score)")
            profile_phase(
                res,
                f"recompute, first score ({len(sample):,} subjects, as in pass 1)",
                lambda: service.recompute(sample, cause=ChangeCause("bench-profile")),
            )
            log(f"{database}: profiling recompute of {len(sample):,} subjects (unchanged)")
            profile_phase(
                res,
                f"recompute, unchanged ({len(sample):,} subjects, as in pass 2)",
                lambda: service.recompute(sample, cause=ChangeCause("bench-profile")),
            )
            n_events = min(args.profile_events, max(args.batch, args.incremental_events))
            prof_batches = incremental_batches(district, rulebook, n_events, args.batch, args.seed + 2, "P")
            log(f"{database}: profiling submit_events of {n_events:,} events")

            def submit_all() -> None:
                for source, items in prof_batches:
                    service.submit_events(source, items)

            profile_phase(res, f"submit_events ({n_events:,} events, batches of {args.batch:,})", submit_all)
            if args.profile_dir:
                folder = Path(args.profile_dir)
                folder.mkdir(parents=True, exist_ok=True)
                for number, (_label, _s, st) in enumerate(res.profiles):
                    st.dump_stats(str(folder / f"credit-{database}-{number + 1}.pstats"))
        note_rss(res, "profiles")
    return res


# --- the report -------------------------------------------------------------------------------------


def _short(path: str) -> str:
    for marker in ("/site-packages/", f"{ROOT}/"):
        if marker in path:
            return path.split(marker, 1)[1]
    if "/lib/python3" in path:
        return path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return path


def _label(key: tuple[str, int, str]) -> str:
    file, line, func = key
    if file == "~":
        return func
    return f"{_short(file)}:{line}({func})"


def _component(key: tuple[str, int, str]) -> str:
    """Where a function lives, for the own-time-by-component table."""
    file, _line, func = key
    if file == "~":
        if "sqlite3" in func or "psycopg" in func:
            return "database driver (C methods)"
        return "built-ins (C)"
    if "/site-packages/" in file:
        package = file.split("/site-packages/", 1)[1].split("/", 1)[0]
        return f"{package.removesuffix('.py')} (library)"
    if f"{ROOT}/" in file:
        return file.split(f"{ROOT}/", 1)[1]
    if "/lib/python3" in file:
        module = file.split("/lib/python3", 1)[1].split("/", 1)[-1]
        return f"stdlib {module.split('/', 1)[0].removesuffix('.py')}"
    return file


def print_profile(label: str, seconds: float, st: pstats.Stats, top: int) -> None:
    """Top functions by cumulative and by own time, and own time summed per component."""
    entries = []
    for key, (cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        entries.append((key, cc, nc, tt, ct))
    root = max((e[4] for e in entries), default=0.0) or 1.0  # the profiled call itself

    def rows(ordered: list[Any]) -> list[list[str]]:
        out = []
        for key, cc, nc, tt, ct in ordered[:top]:
            calls = f"{nc:,}" if nc == cc else f"{nc:,}/{cc:,}"
            out.append(
                [
                    _label(key)[:95],
                    calls,
                    f"{tt:.3f}",
                    f"{100 * tt / root:.1f}%",
                    f"{ct:.3f}",
                    f"{100 * ct / root:.1f}%",
                    f"{ct / nc * 1e6:,.0f}",
                ]
            )
        return out

    header = ["function", "calls", "own s", "own %", "cum s", "cum %", "cum us/call"]
    print_table(
        f"profile: {label}: {seconds:,.1f} s under cProfile; top {top} by cumulative time",
        header,
        rows(sorted(entries, key=lambda e: -e[4])),
    )
    print_table(
        f"profile: {label}: top {top} by own time", header, rows(sorted(entries, key=lambda e: -e[3]))
    )
    by_component: Counter[str] = Counter()
    for key, _cc, _nc, tt, _ct in entries:
        by_component[_component(key)] += tt
    print_table(
        f"profile: {label}: own time by component",
        ["component", "own s", "own %"],
        [[name, f"{tt:.3f}", f"{100 * tt / root:.1f}%"] for name, tt in by_component.most_common(12)],
    )


def report(results: list[DbResult], district: District, args: argparse.Namespace) -> None:
    n, e = district.subjects, district.events
    full = e >= FULL_EVENTS
    scale = FULL_EVENTS / e
    names = [r.database for r in results]

    def row(
        label: str, cells: list[str], target: str = "", verdicts: list[bool | None] | None = None
    ) -> list[str]:
        v = " / ".join(verdict(x) for x in verdicts) if verdicts else ""
        return [label, *cells, target, v]

    def cpu(r: DbResult, phase: str) -> str:
        client, server = r.cpu.get(phase, (math.nan, math.nan))
        return f"{client:,.1f} / " + ("-" if math.isnan(server) else f"{server:,.1f}")

    def proj(seconds: float) -> str:
        return f"{seconds:,.1f} s" if full else f"{seconds:,.1f} s -> {seconds * scale:,.0f} s"

    rows = [
        row(
            "subjects / events (bulk, bypasses the ledger)",
            [f"{r.subjects:,} / {r.events:,}" for r in results],
        ),
        row(
            "  seal a subject (wrap key + 2 fields), real",
            [f"{r.seal_us:,.0f} us x {r.sealed_real:,}" for r in results],
        ),
        row("  insert subjects (excl. sealing)", [f"{r.subject_insert_s:,.1f} s" for r in results]),
        row("  generate events", [f"{r.gen_s:,.1f} s" for r in results]),
        row(
            "  insert events",
            [f"{r.insert_s:,.1f} s ({fmt_rate(rate(r.events, r.insert_s), 'ev/s')})" for r in results],
        ),
        row("  rebuild keys/index (+ VACUUM ANALYZE on PG)", [f"{r.index_s:,.1f} s" for r in results]),
        row(
            "  bulk load, events/s (generate+insert+index)",
            [fmt_rate(rate(r.events, r.load_s), "ev/s") for r in results],
        ),
        row(
            "engine alone: evaluate(), us per subject",
            [f"{r.engine_s / max(1, r.engine_sample) * 1e6:,.1f} (n={r.engine_sample:,})" for r in results],
        ),
        row("  engine alone, all subjects (extrapolated)", [proj(r.engine_full_s) for r in results]),
        row(
            "  CPU s of the sample (wall s)",
            [f"{r.engine_cpu_s:,.1f} ({r.engine_s:,.1f})" for r in results],
        ),
        row(
            "recompute_all pass 1 (first scores)" + ("" if full else " -> 10M ev"),
            [proj(r.pass1_s) for r in results],
            f"<= {TARGET_RECOMPUTE_S:.0f} s",
            [r.pass1_s * (1 if full else scale) <= TARGET_RECOMPUTE_S for r in results],
        ),
        row(
            "  subjects/s | events/s",
            [f"{rate(r.subjects, r.pass1_s):,.0f} | {rate(r.events, r.pass1_s):,.0f}" for r in results],
        ),
        row("  credit_change records written", [f"{r.pass1_changed:,}" for r in results]),
        row("  CPU s: bench process / PG backends", [cpu(r, "pass 1") for r in results]),
        row(
            "recompute_all pass 2 (unchanged)" + ("" if full else " -> 10M ev"),
            [proj(r.pass2_s) for r in results],
            f"<= {TARGET_RECOMPUTE_S:.0f} s",
            [r.pass2_s * (1 if full else scale) <= TARGET_RECOMPUTE_S for r in results],
        ),
        row(
            "  subjects/s | events/s",
            [f"{rate(r.subjects, r.pass2_s):,.0f} | {rate(r.events, r.pass2_s):,.0f}" for r in results],
        ),
        row("  credit_change records written", [f"{r.pass2_changed:,}" for r in results]),
        row("  CPU s: bench process / PG backends", [cpu(r, "pass 2") for r in results]),
        row("pass 1 / engine alone", [fmt_ratio(r.pass1_s / r.engine_full_s) for r in results]),
        row("pass 2 / engine alone", [fmt_ratio(r.pass2_s / r.engine_full_s) for r in results]),
        row(
            "  pass 2 minus engine (DB + service overhead)",
            [f"{r.pass2_s - r.engine_full_s:,.1f} s" for r in results],
        ),
        row(
            f"incremental submit_events, batches of {args.batch:,}",
            [fmt_rate(rate(r.inc_events, r.inc_s), "ev/s") for r in results],
            f">= {TARGET_INCREMENTAL:,.0f} ev/s",
            [rate(r.inc_events, r.inc_s) >= TARGET_INCREMENTAL for r in results],
        ),
        row("  per batch p50 / p99", [r.inc_batches.ms() if r.inc_batches else "n/a" for r in results]),
        row(
            "  ledger records written (events + changes)",
            [f"{r.inc_records:,} ({r.inc_changes:,} changes)" for r in results],
        ),
        row("  ledger records/s in that", [fmt_rate(rate(r.inc_records, r.inc_s)) for r in results]),
        row("  CPU s: bench process / PG backends", [cpu(r, "incremental") for r in results]),
        row(
            f"baseline: Ledger.submit, same count, batches of {args.batch:,}",
            [fmt_rate(rate(r.inc_events, r.ledger_s)) for r in results],
        ),
        row("  per batch p50 / p99", [r.ledger_batches.ms() if r.ledger_batches else "n/a" for r in results]),
        row(
            "submit_events events/s / Ledger.submit records/s",
            [fmt_ratio(rate(r.inc_events, r.inc_s) / rate(r.inc_events, r.ledger_s)) for r in results],
        ),
        row(
            "RSS: largest after a phase / process peak so far",
            [
                f"{max(c for _, c, _ in r.rss):,.0f} / {max(p for _, _, p in r.rss):,.0f} MiB"
                if r.rss
                else "n/a"
                for r in results
            ],
        ),
    ]
    title = f"credit service, synthetic district: {n:,} subjects, {e:,} events"
    if not full:
        title += f" (figures after '->' are projected to {FULL_EVENTS:,} events, x{scale:,.0f}, linear)"
    print_table(title, ["measure", *names, "target", "verdict"], rows)


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--subjects", type=int, default=FULL_SUBJECTS)
    parser.add_argument("--events", type=int, default=FULL_EVENTS)
    parser.add_argument("--incremental-events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500, help="events per submit_events call")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--workers", type=int, default=2, help="processes for recompute_all (2 cores here)")
    parser.add_argument("--workdir", help="where the temp dirs go (default: the system temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite files and the PG database")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="any database URL on the PostgreSQL server")
    parser.add_argument("--engine-sample", type=int, default=200_000, help="subjects in the engine baseline")
    parser.add_argument("--profile-subjects", type=int, default=20_000, help="0: no profiles")
    parser.add_argument(
        "--profile-events", type=int, default=10_000, help="events in the submit_events profile"
    )
    parser.add_argument("--profile-top", type=int, default=15)
    parser.add_argument("--profile-dir", help="also write the .pstats files here")
    parser.add_argument(
        "--seal-budget",
        type=float,
        default=60.0,
        help="seconds of real sealing allowed; past it, 10,000 subjects are sealed and the rest get copies",
    )
    args = parser.parse_args(argv)
    if args.subjects < 1 or args.events < args.subjects:
        parser.error("need --subjects >= 1 and --events >= --subjects")
    databases = ["sqlite", "postgres"] if args.database == "both" else [args.database]

    def terminate(_signum: int, _frame: Any) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, terminate)
    started = time.perf_counter()
    rulebook = default_rulebook()
    print(
        f"bench_credit: {args.subjects:,} subjects, {args.events:,} events, "
        f"{args.incremental_events:,} incremental in batches of {args.batch:,}, seed {args.seed}"
    )
    print(code_version(("credit", "ledger")))
    print(
        f"host: {platform.machine()} cpus={os.cpu_count()}, load {load_average()}, "
        f"Python {platform.python_version()}, "
        f"rulebook {rulebook.version}, today {TODAY}"
    )
    if "postgres" in databases:
        print(f"server: {pg_server_info(args.pg_url)}")
    print(
        "NOTE: the bulk load writes credit_subject and credit_event directly (fake record ids): it "
        "BYPASSES THE LEDGER. recompute_all and the incremental part go through the service and the ledger."
    )

    log(f"generating the district: {args.subjects:,} subjects")
    t0 = time.perf_counter()
    district = District(args.subjects, args.events, args.seed, rulebook)
    gen_subjects_s = time.perf_counter() - t0
    for i in range(min(district.subjects, 2_000)):  # the identifiers are what the API accepts
        parse_identifier(district.identifiers[i], today=TODAY)
    describe_district(district, gen_subjects_s)

    secret = secrets.token_hex(32)
    # pass 1 queues one record per subject; nothing sequences them here (no background jobs).
    max_pending = max(2_000_000, 2 * args.subjects + 4 * args.incremental_events + 100_000)
    results: list[DbResult] = []
    for database in databases:
        results.append(bench_database(database, district, args, secret, max_pending))
        log(f"{database}: done")
        gc.collect()

    print()
    for r in results:
        if r.database == "sqlite":
            print(f"sqlite: {r.durability}")
    for r in results:
        for label, seconds, st in r.profiles:
            print_profile(f"{r.database}: {label}", seconds, st, args.profile_top)
    report(results, district, args)
    print()
    for r in results:
        print(
            f"{r.database}: RSS after each phase (process peak so far): "
            + ", ".join(f"{p} {c:,.0f} ({mb:,.0f}) MiB" for p, c, mb in r.rss)
        )
        for note in r.notes:
            print(f"note: {r.database}: {note}")
        if r.inc_errors:
            print(f"note: {r.database}: {r.inc_errors} incremental outcomes were duplicates or had no score")
        if r.sealed_real < r.subjects:
            print(
                f"note: {r.database}: sealing all {r.subjects:,} subjects would take about "
                f"{r.seal_us * r.subjects / 1e6:,.0f} s (> --seal-budget {args.seal_budget:,.0f} s): "
                f"{r.sealed_real:,} sealed for real, the rest store copies of one subject's sealed fields"
            )
    print(
        "note: the incremental phase and pass 1 leave their ledger records pending (no sequencer runs); "
        "sequencing is not part of these figures"
    )
    print(f"load average at the end: {load_average()} (other work on the machine skews wall times)")
    print(f"total wall time {time.perf_counter() - started:,.0f} s")
    return 0


def describe_district(district: District, seconds: float) -> None:
    counts = sorted(district.counts)
    person = sorted(c for c, org in zip(district.counts, district.orgs, strict=True) if not org)
    org = sorted(c for c, o in zip(district.counts, district.orgs, strict=True) if o)

    def pct(values: list[int], q: float) -> int:
        return values[min(len(values) - 1, int(q / 100 * len(values)))] if values else 0

    rows = []
    for label, values in (("all", counts), ("persons", person), ("organizations", org)):
        rows.append(
            [
                label,
                f"{len(values):,}",
                f"{sum(values):,}",
                f"{sum(values) / max(1, len(values)):.1f}",
                f"{pct(values, 50)}",
                f"{pct(values, 90)}",
                f"{pct(values, 99)}",
                f"{values[-1] if values else 0:,}",
            ]
        )
    print_table(
        f"district ({seconds:,.1f} s to draw the subjects and identifiers)",
        ["subjects", "count", "events", "mean", "p50", "p90", "p99", "max"],
        rows,
    )
    counter, total = mix_summary(district)
    mix_rows = [[name, f"{100 * c / total:.2f}%"] for name, c in counter.most_common()]
    half = (len(mix_rows) + 1) // 2
    paired = [
        [*mix_rows[k], *(mix_rows[k + half] if k + half < len(mix_rows) else ["", ""])] for k in range(half)
    ]
    print_table(
        f"event type mix (first {min(20_000, district.subjects):,} subjects, {total:,} events)",
        ["type", "share", "type ", "share "],
        paired,
    )


if __name__ == "__main__":
    sys.exit(main())
