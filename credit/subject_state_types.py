"""A subject's incremental scoring state as data, and its stored form (see :mod:`credit.subject_state`).

The stored form (:meth:`SubjectState.to_bytes`) is a compact positional JSON array, written and
read by the standard library's C codec; dates are days since 1970-01-01, and event types and
sources are indices into one string table per state. Its first element is the format version
(:data:`STATE_FORMAT`): a reader refuses any other, and a state it cannot read is rebuilt from the
subject's events — the state holds nothing that the events, effects and decisions do not.

Layout of format 1::

    [1, rulebook_version, kind (0 person, 1 organization), as_of, future_on,
     latest_negative, latest_removal, red_entered, red_decided_on,
     strings,                      # event types and sources
     live,                         # 10 per event: id, type, occurred_on, source, quantity,
                                   #   ended_on, refers_to, repaired_on, credit, exits (0 or
                                   #   [date, id, ...])
     caps,                         # 3 per group: key, horizon, [date, id, credit, released_on, ...]
                                   #   (id: the index of a live event when it is one)
     orphans]                      # 3 per exit: listing id, date, id
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from credit.engine_caps import Credited
from credit.engine_steps import History
from credit.engine_types import Event
from credit.errors import SubjectStateError
from credit.identifiers import SubjectKind

#: The stored form's version; change it with any change of layout or meaning.
STATE_FORMAT = 1

_EPOCH = date(1970, 1, 1).toordinal()
_KINDS = (SubjectKind.PERSON, SubjectKind.ORGANIZATION)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
_decode = json.JSONDecoder().decode
_LIVE_FIELDS = 10


class LiveEvent(NamedTuple):
    """An event that still counts (or may: repaired, superseded) at the state's date."""

    event: Event
    repaired_on: date | None = None  # the earliest repair in force
    credit: int | None = None  # capped types: the credit the rolling rule fixed
    exits: tuple[tuple[date, str], ...] = ()  # listings: exit events (date, id), not withdrawn

    @property
    def exit_on(self) -> date | None:
        """A listing's earliest exit event (exits are kept in date order)."""
        return self.exits[0][0] if self.exits else None


class CapWindow(NamedTuple):
    """One cap group's recent credits."""

    horizon: date  # credits dated on or before it were dropped: a later window must start after it
    credits: tuple[Credited, ...]  # date order (ties by id); the group's latest event is last


class OrphanExit(NamedTuple):
    """A listing exit whose listing the state does not know yet."""

    listing_id: str
    occurred_on: date
    event_id: str


@dataclass(frozen=True, slots=True)
class SubjectState:
    """What one subject's scoring still needs, under one rulebook version, valid at ``as_of``."""

    rulebook_version: str
    subject: SubjectKind
    as_of: date
    live: tuple[LiveEvent, ...] = ()  # date order, ties by event id
    caps: tuple[tuple[str, CapWindow], ...] = ()  # by cap key
    orphan_exits: tuple[OrphanExit, ...] = ()
    history: History = History(None, None)  # of the events no longer live
    red_entered: date | None = None  # the red-list entry in force (None: not entered or exited)
    red_decided_on: date | None = None  # the last red-list decision applied
    future_on: date | None = None  # the first input dated after as_of: a rebuild is due then

    def to_bytes(self) -> bytes:
        """The stored form (module docstring): deterministic, UTF-8 JSON."""
        strings: dict[str, int] = {}
        live: list[Any] = []
        position: dict[str, int] = {}
        for i, le in enumerate(self.live):
            ev = le.event
            position[ev.id] = i
            exits: Any = 0
            if le.exits:
                exits = [x for day, exit_id in le.exits for x in (_out(day), exit_id)]
            live += (
                ev.id,
                strings.setdefault(ev.type, len(strings)),
                _out(ev.occurred_on),
                strings.setdefault(ev.source, len(strings)),
                ev.quantity,
                _out(ev.ended_on),
                ev.refers_to,
                _out(le.repaired_on),
                le.credit,
                exits,
            )
        caps: list[Any] = []
        for key, window in self.caps:
            credits: list[Any] = []
            for c in window.credits:
                event_ref = position.get(c.event_id, c.event_id)
                credits += (_out(c.occurred_on), event_ref, c.credit, _out(c.released_on))
            caps += (key, _out(window.horizon), credits)
        orphans = [x for o in self.orphan_exits for x in (o.listing_id, _out(o.occurred_on), o.event_id)]
        document = [
            STATE_FORMAT,
            self.rulebook_version,
            _KINDS.index(self.subject),
            _out(self.as_of),
            _out(self.future_on),
            _out(self.history.latest_negative),
            _out(self.history.latest_removal),
            _out(self.red_entered),
            _out(self.red_decided_on),
            list(strings),
            live,
            caps,
            orphans,
        ]
        return _ENCODER.encode(document).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> SubjectState:
        """Read a stored state; :class:`SubjectStateError` if it is not one this code reads."""
        try:
            document = _decode(data.decode())
            if not isinstance(document, list) or len(document) != 13 or document[0] != STATE_FORMAT:
                raise SubjectStateError(f"not a subject state of format {STATE_FORMAT}")
            return _state(document)
        except (ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError) as e:
            raise SubjectStateError(f"not a readable subject state: {e}") from e


def _out(day: date | None) -> int | None:
    return None if day is None else day.toordinal() - _EPOCH


def _in(days: int | None) -> date | None:
    return None if days is None else date.fromordinal(days + _EPOCH)


def _day(days: int) -> date:
    return date.fromordinal(days + _EPOCH)


def _state(document: list[Any]) -> SubjectState:
    (_f, version, kind, as_of, future_on, negative, removal, entered, decided) = document[:9]
    strings, flat_live, flat_caps, flat_orphans = document[9:]
    if not isinstance(version, str) or kind not in (0, 1):
        raise SubjectStateError("a subject state with a malformed header")
    if len(flat_live) % _LIVE_FIELDS or len(flat_caps) % 3 or len(flat_orphans) % 3:
        raise SubjectStateError("a subject state with a malformed layout")
    live: list[LiveEvent] = []
    for i in range(0, len(flat_live), _LIVE_FIELDS):
        event_id, type_, occurred, source, quantity, ended, refers_to, repaired, credit, exits = flat_live[
            i : i + _LIVE_FIELDS
        ]
        source_name = strings[source]
        event = Event(event_id, strings[type_], _day(occurred), source_name, quantity, _in(ended), refers_to)
        exit_pairs: tuple[tuple[date, str], ...] = ()
        if exits:
            exit_pairs = tuple((_day(exits[j]), exits[j + 1]) for j in range(0, len(exits), 2))
        live.append(LiveEvent(event, _in(repaired), credit, exit_pairs))
    caps: list[tuple[str, CapWindow]] = []
    for i in range(0, len(flat_caps), 3):
        key, horizon, flat = flat_caps[i : i + 3]
        credits = tuple(
            Credited(
                _day(flat[j]),
                flat[j + 1] if isinstance(flat[j + 1], str) else live[flat[j + 1]].event.id,
                flat[j + 2],
                _in(flat[j + 3]),
            )
            for j in range(0, len(flat), 4)
        )
        caps.append((key, CapWindow(_day(horizon), credits)))
    orphans = tuple(
        OrphanExit(flat_orphans[j], _day(flat_orphans[j + 1]), flat_orphans[j + 2])
        for j in range(0, len(flat_orphans), 3)
    )
    return SubjectState(
        rulebook_version=version,
        subject=_KINDS[kind],
        as_of=_day(as_of),
        live=tuple(live),
        caps=tuple(caps),
        orphan_exits=orphans,
        history=History(_in(negative), _in(removal)),
        red_entered=_in(entered),
        red_decided_on=_in(decided),
        future_on=_in(future_on),
    )
