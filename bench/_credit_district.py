"""The synthetic district of the credit benchmark: subjects, their identifiers and their events.

Everything is deterministic from the seed and generated as a stream: the district keeps only a
few bytes per subject (kind, event count, keyed reference), and any subject's identifier, name or
events are derived again when they are needed. Events come in blocks of ``BLOCK_SUBJECTS``
subjects, each block from its own random generator, so a range of subjects can be regenerated
without replaying everything before it.
"""

from __future__ import annotations

import math
import random
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from typing import Any, NamedTuple

from _credit_mix import (
    GIVEN,
    HOME_REGIONS,
    ORG_FORMS,
    ORG_MIX,
    ORG_TRADES,
    ORG_WORDS,
    OTHER_REGIONS,
    PERSON_MIX,
    SOURCE_NAMES,
    SURNAMES,
    check_mix,
    cumulative,
)

from credit.engine import add_months
from credit.identifiers import (
    SubjectKind,
    credit_code_check_char,
    organization_code_check_char,
    resident_id_check_char,
)
from credit.rulebook import Rulebook
from credit.service import Source, event_id_of

TODAY = date(2026, 11, 21)
FIRST_DAY = date(2020, 1, 1)
LAST_DAY = date(2026, 11, 20)

# Subjects: 7% organizations by head count. A district's residents far outnumber its legal
# persons; 7% sits between enterprises alone (a few per cent of the population) and every holder
# of a unified social credit code, individual businesses included (over 10%). The plans' 14 M
# population records vs 7.54 M legal-person records (65/35) count records, not subjects: a legal
# person produces many more records (yearly tax grades, risk classes, inspections, penalties). So an
# organization gets 7x a person's expected number of extra events, which puts about a third of the
# events on organizations, as in the plans. ``--org-share`` changes the head count share.
ORG_SHARE = 0.07
ORG_EVENT_FACTOR = 7.0
COUNT_SIGMA = 1.2  # log-normal spread of the events per subject (median well below the mean)
COUNT_WEIGHT_CAP = 60.0  # no single subject's weight beyond 60x the median
MAX_EVENTS_PER_SUBJECT = 5_000
BLOCK_SUBJECTS = 1_000  # subjects per random generator (the unit of regeneration)

_ORG_BODY = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # the GB 32100 alphabet (no I, O, S, V, Z)
# Identifiers are unique by construction: subject i's birth date and sequence number (persons) or
# organization code body (organizations) come from an affine permutation of i, so no set of
# already-drawn identifiers is needed.
_BIRTH_FIRST = date(1930, 1, 1).toordinal()
_BIRTH_DAYS = date(2008, 11, 1).toordinal() - _BIRTH_FIRST
_PERSON_SLOTS = _BIRTH_DAYS * 1000  # (birth date, 3-digit sequence) pairs
_ORG_SLOTS = len(_ORG_BODY) ** 8
_PERSON_STEP = 7_368_787  # coprime with _PERSON_SLOTS (checked in District)
_ORG_STEP = 48_271_048_271  # coprime with _ORG_SLOTS (checked in District)
_MASK64 = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64: a cheap well-spread 64-bit hash of ``x`` (for per-subject choices)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _org_prefix(pick: int) -> str:
    """The registration-authority and type digits of the ``pick``-th percentile (ORG_FORMS weights)."""
    for prefix, _suffix, weight in ORG_FORMS:
        if pick < weight:
            return prefix
        pick -= weight
    return ORG_FORMS[0][0]


class DistrictEvent(NamedTuple):
    """One generated event, in the fields of a ``submit_events`` item (dates as dates)."""

    id: str
    type: str
    occurred_on: date
    ended_on: date | None
    quantity: int
    source: str
    source_ref: str
    refers_to: str | None  # the listing's event id (exits only)


class District:
    """The synthetic district: per subject only its kind, event count and keyed reference.

    ``events`` is spread over ``subjects`` so that each has at least one and the mean follows from
    the two numbers (2.3 per subject at the full size, 10 at 1 M / 10 M); organizations get
    ``ORG_EVENT_FACTOR`` times a person's expected share of the extra events.
    """

    def __init__(
        self, subjects: int, events: int, seed: int, rulebook: Rulebook, org_share: float = ORG_SHARE
    ) -> None:
        if subjects < 1 or events < subjects:
            raise ValueError("every subject has at least one event: need events >= subjects >= 1")
        if subjects > _PERSON_SLOTS:
            raise ValueError(f"at most {_PERSON_SLOTS:,} subjects (distinct birth dates x sequences)")
        if math.gcd(_PERSON_STEP, _PERSON_SLOTS) != 1 or math.gcd(_ORG_STEP, _ORG_SLOTS) != 1:
            raise ValueError("identifier permutation steps must be coprime with their spaces")
        self.subjects = subjects
        self.events = events
        self.seed = seed
        self.org_share = org_share
        self.gens = check_mix(rulebook)
        self.person_types = list(PERSON_MIX)
        self.person_cum = cumulative(list(PERSON_MIX.values()))
        self.org_types = list(ORG_MIX)
        self.org_cum = cumulative(list(ORG_MIX.values()))
        self.first_ord = FIRST_DAY.toordinal()
        self.span = LAST_DAY.toordinal() - self.first_ord
        rng = random.Random(seed)
        self.orgs = bytearray(1 if rng.random() < org_share else 0 for _ in range(subjects))
        self.counts = self._counts(rng)
        self.person_events = sum(c for c, org in zip(self.counts, self.orgs, strict=True) if not org)
        self.refs = bytearray()  # 32 bytes per subject, filled by compute_refs (needs the ledger's key)

    def _counts(self, rng: random.Random) -> array[int]:
        """At least one event each; the rest spread log-normally (orgs weighted), summing exactly.

        Each subject's share is rounded stochastically (so the distribution keeps its shape), then
        the few events the rounding left over or took too many are given to or taken from random
        subjects.
        """
        n, extra = self.subjects, self.events - self.subjects
        weights = array(
            "d",
            (
                min(rng.lognormvariate(0.0, COUNT_SIGMA), COUNT_WEIGHT_CAP)
                * (ORG_EVENT_FACTOR if org else 1.0)
                for org in self.orgs
            ),
        )
        scale = extra / math.fsum(weights) if extra else 0.0
        counts = array("I", (min(MAX_EVENTS_PER_SUBJECT, 1 + int(w * scale + rng.random())) for w in weights))
        del weights
        left = self.events - sum(counts)
        while left != 0:
            i = rng.randrange(n)
            if left > 0 and counts[i] < MAX_EVENTS_PER_SUBJECT:
                counts[i] += 1
                left -= 1
            elif left < 0 and counts[i] > 1:
                counts[i] -= 1
                left += 1
        return counts

    # --- one subject ----------------------------------------------------------------------------

    def kind(self, i: int) -> SubjectKind:
        """Subject ``i``'s kind."""
        return SubjectKind.ORGANIZATION if self.orgs[i] else SubjectKind.PERSON

    def ref(self, i: int) -> bytes:
        """Subject ``i``'s keyed reference (after :func:`compute_refs`)."""
        return bytes(self.refs[32 * i : 32 * i + 32])

    def identifier(self, i: int) -> str:
        """Subject ``i``'s resident ID (GB 11643) or unified social credit code (GB 32100)."""
        h = _mix(self.seed * 0x1_0000_0001 + i)
        if self.orgs[i]:
            prefix = _org_prefix((h & 0xFFFF) % 100)
            regions = HOME_REGIONS if (h >> 16) % 10 else OTHER_REGIONS
            region = regions[(h >> 24) % len(regions)]
            k = (_ORG_STEP * i + self.seed) % _ORG_SLOTS
            chars = []
            for _ in range(8):
                k, digit = divmod(k, len(_ORG_BODY))
                chars.append(_ORG_BODY[digit])
            body8 = "".join(chars)
            body = prefix + region + body8 + organization_code_check_char(body8)
            return body + credit_code_check_char(body)
        regions = HOME_REGIONS if (h >> 16) % 5 else OTHER_REGIONS
        region = regions[(h >> 24) % len(regions)]
        day, sequence = divmod((_PERSON_STEP * i + self.seed) % _PERSON_SLOTS, 1000)
        birth = date.fromordinal(_BIRTH_FIRST + day)
        body = f"{region}{birth:%Y%m%d}{sequence:03d}"
        return body + resident_id_check_char(body)

    def name(self, i: int) -> str:
        """A plausible name (only sealed, never used otherwise)."""
        h = _mix(self.seed * 0x2_0000_0003 + i)
        if self.orgs[i]:
            prefix = self.identifier(i)[:2]
            suffix = next(f[1] for f in ORG_FORMS if f[0] == prefix)
            return f"福州市{ORG_WORDS[h % len(ORG_WORDS)]}{ORG_TRADES[(h >> 8) % len(ORG_TRADES)]}{suffix}"
        given = GIVEN[(h >> 8) % len(GIVEN)]
        if (h >> 16) % 3:
            given += GIVEN[(h >> 24) % len(GIVEN)]
        return SURNAMES[h % len(SURNAMES)] + given

    def random_subject(self, rng: random.Random, kind: SubjectKind | None = None) -> int:
        """A uniformly random subject (of ``kind``, if given; rejection sampling keeps no index lists)."""
        want = None if kind is None else (1 if kind is SubjectKind.ORGANIZATION else 0)
        for _ in range(1_000_000):
            i = rng.randrange(self.subjects)
            if want is None or self.orgs[i] == want:
                return i
        raise ValueError(f"the district has no {kind}")

    # --- events ---------------------------------------------------------------------------------

    def iter_events(
        self, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, list[DistrictEvent]]]:
        """(subject, its events) for subjects ``start`` to ``stop``, in order."""
        stop = self.subjects if stop is None else min(stop, self.subjects)
        block = start // BLOCK_SUBJECTS
        while block * BLOCK_SUBJECTS < stop:
            rng = random.Random(self.seed * 1_000_003 + block)
            first = block * BLOCK_SUBJECTS
            for i in range(first, min(first + BLOCK_SUBJECTS, stop)):
                events = self._events_of(i, rng)
                if i >= start:
                    yield i, events
            block += 1

    def _events_of(self, i: int, rng: random.Random) -> list[DistrictEvent]:
        n = self.counts[i]
        if self.orgs[i]:
            types = rng.choices(self.org_types, cum_weights=self.org_cum, k=n)
        else:
            types = rng.choices(self.person_types, cum_weights=self.person_cum, k=n)
        out: list[DistrictEvent] = []
        follow: tuple[str, int, str, str] | None = None  # type, day, source, listing id
        first, span, last = self.first_ord, self.span, self.first_ord + self.span
        gens = self.gens
        for j, name in enumerate(types):
            ref = f"D{i:08d}-{j:05d}"
            if follow is not None:
                exit_type, day, source, listing = follow
                follow = None
                out.append(
                    DistrictEvent(
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
            out.append(DistrictEvent(event_id, name, occurred, ended, quantity, source, ref, None))
            if gen.follow_up is not None and j + 1 < n and rng.random() < gen.follow_up[1]:
                exit_day = day + rng.randint(91, 730)
                if exit_day <= last:
                    follow = (gen.follow_up[0], exit_day, source, event_id)
        return out

    # --- summaries ------------------------------------------------------------------------------

    def count_percentiles(self, qs: Sequence[float]) -> dict[str, dict[str, Any]]:
        """Per kind (and all): subjects, events, mean and the ``qs`` percentiles of events per subject
        (from a histogram, so no sorted copy of every count)."""
        hist: dict[str, Counter[int]] = {"all": Counter(), "persons": Counter(), "organizations": Counter()}
        for c, org in zip(self.counts, self.orgs, strict=True):
            hist["organizations" if org else "persons"][c] += 1
        hist["all"] = hist["persons"] + hist["organizations"]
        out: dict[str, dict[str, Any]] = {}
        for label, h in hist.items():
            n = sum(h.values())
            events = sum(c * k for c, k in h.items())
            row: dict[str, Any] = {"subjects": n, "events": events, "mean": events / n if n else 0.0}
            ordered = sorted(h.items())
            for q in qs:
                rank, seen, value = math.ceil(q / 100 * n), 0, 0
                for value, k in ordered:  # noqa: B007 - value is the answer after the break
                    seen += k
                    if seen >= rank:
                        break
                row[f"p{q:g}"] = value
            row["max"] = ordered[-1][0] if ordered else 0
            out[label] = row
        return out


def mix_summary(district: District, sample: int = 20_000) -> tuple[Counter[str], int]:
    """Realised type counts over the first ``sample`` subjects (and their event count)."""
    counter: Counter[str] = Counter()
    total = 0
    for _i, events in district.iter_events(0, sample):
        for ev in events:
            counter[ev.type] += 1
            total += 1
    return counter, total


# --- incremental intake -------------------------------------------------------------------------------

IntakeBatch = tuple[Source, list[dict[str, Any]], list[int]]  # source, items, each item's subject


def _role_tables(
    district: District, rulebook: Rulebook
) -> tuple[list[str], list[float], dict[str, tuple[float, dict[str, list[tuple[str, float]]]]]]:
    """Per source role: its share of events, the person share of its events, and its types by kind."""
    person_share = district.person_events / district.events
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
        tables[r] = (p / (p + o) if p + o else 0.0, roles[r])
    return names, weights, tables


def incremental_batches(
    district: District, rulebook: Rulebook, total: int, batch: int, seed: int, tag: str
) -> list[IntakeBatch]:
    """``total`` new events in batches from one source each, for random existing subjects.

    A batch's role is drawn by the role's share of the mix; its types are those the role may report
    for the subject's kind. Dates are recent (the last 60 days); listing exits are not sent.
    """
    rng = random.Random(seed)
    names, weights, tables = _role_tables(district, rulebook)
    has = {"person": not all(district.orgs), "organization": any(district.orgs)}
    out: list[IntakeBatch] = []
    made = 0
    while made < total:
        role = rng.choices(names, weights=weights)[0]
        person_share, types = tables[role]
        items: list[dict[str, Any]] = []
        subjects: list[int] = []
        for _ in range(min(batch, total - made)):
            kind = "person" if rng.random() < person_share else "organization"
            if not types[kind] or not has[kind]:
                kind = "organization" if kind == "person" else "person"
            i = district.random_subject(rng, SubjectKind(kind))
            name = rng.choices([t for t, _ in types[kind]], weights=[w for _, w in types[kind]])[0]
            gen = district.gens[name]
            quantity = rng.choices(*gen.quantities)[0] if gen.quantities else 1
            occurred = LAST_DAY - timedelta(days=rng.randrange(60))
            item: dict[str, Any] = {
                "type": name,
                "subject": district.identifier(i),
                "quantity": quantity,
                "source_ref": f"I{tag}-{made:08d}",
            }
            if gen.arrears:
                item["ended_on"] = occurred.isoformat()
                occurred = add_months(occurred, -quantity)
            item["occurred_on"] = occurred.isoformat()
            items.append(item)
            subjects.append(i)
            made += 1
        out.append((Source(SOURCE_NAMES[role], role), items, subjects))
    return out
