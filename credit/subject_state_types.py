"""A subject's incremental scoring state as data, and its stored form (see :mod:`credit.subject_state`).

The stored form (:meth:`SubjectState.to_bytes`) is an explicit little-endian layout with length
prefixes, read and written with :mod:`struct`. Its first byte is the format version
(:data:`STATE_FORMAT`): a reader refuses any other, and a state it cannot read is rebuilt from the
subject's events — the state holds nothing that the events, effects and decisions do not.

Layout of format 1 (``i4`` a signed 32-bit integer, ``u1``/``u2`` unsigned; a *day* is an ``i4``
count of days since 1970-01-01; *text* is ``u2`` length + UTF-8; an *id* is
text, or — length with bit 15 set — that many raw bytes of an id written in lowercase hex)::

    header   u1 format, u1 kind (0 person, 1 organization), day as_of, u1 dates present,
             u2 strings, u2 live events, u2 orphan exits, u1 cap groups; then the days present
             (bit 0 future_on, 1 latest_negative, 2 latest_removal, 3 red_entered,
             4 red_decided_on, 5 next_expiry); text rulebook_version
    strings  text × strings                (event types, sources, cap keys)
    live     per event: u2 type, u2 source, day occurred_on, i4 quantity, u1 flags; then
             day ended_on (flag 1), day repaired_on (flag 2), i4 credit (flag 4); id;
             id refers_to (flag 8); u2 exits and per exit day, id (flag 16)
    caps     per group: u2 key, day horizon, u2 credits; per credit: u2 live event index
             (0xFFFF: not live), i4 credit, u1 released; day released_on (if released); for an
             event not live, day occurred_on and id
    orphans  per exit: day occurred_on, id listing, id exit
"""

from __future__ import annotations

import struct
from datetime import date
from typing import NamedTuple

from credit.engine_caps import Credited
from credit.engine_steps import History
from credit.engine_types import Event
from credit.errors import SubjectStateError
from credit.identifiers import SubjectKind

#: The stored form's version; change it with any change of layout or meaning.
STATE_FORMAT = 1

_EPOCH = date(1970, 1, 1).toordinal()
_NONE = -(2**31)
_KINDS = (SubjectKind.PERSON, SubjectKind.ORGANIZATION)
_KIND_CODES = {kind: code for code, kind in enumerate(_KINDS)}
_HEADER = struct.Struct("<BBiBHHHB")
_LIVE = struct.Struct("<HHiiB")
_I4 = struct.Struct("<i")
_CAP = struct.Struct("<HiH")
_CREDIT = struct.Struct("<HiB")
_U2 = struct.Struct("<H")
_PRESENT = [struct.Struct("<" + "i" * bin(mask).count("1")) for mask in range(64)]  # by dates-present mask
_HEX_ID = 0x8000
_ABSENT = 0xFFFF
_DAYS: dict[int, date] = {}  # day number → date (dates repeat across subjects; fromordinal is slow)


def _day(days: int) -> date:
    found = _DAYS.get(days)
    if found is None:
        found = date.fromordinal(days + _EPOCH)
        if len(_DAYS) < 100_000:
            _DAYS[days] = found
    return found


def _out(day: date | None) -> int:
    return _NONE if day is None else day.toordinal() - _EPOCH


class LiveEvent(NamedTuple):
    """An event that still counts (or may: repaired, superseded) at the state's date: the event's
    facts (what :class:`~credit.engine_steps.EventFacts` names) and what became of it."""

    id: str
    type: str
    occurred_on: date
    source: str
    quantity: int
    ended_on: date | None
    refers_to: str | None
    repaired_on: date | None = None  # the earliest repair in force
    credit: int | None = None  # capped types: the credit the rolling rule fixed
    exits: tuple[tuple[date, str], ...] = ()  # listings: exit events (date, id), not withdrawn

    @classmethod
    def of(
        cls,
        ev: Event,
        repaired_on: date | None = None,
        credit: int | None = None,
        exits: tuple[tuple[date, str], ...] = (),
    ) -> LiveEvent:
        """A new event as the state keeps it."""
        return cls(
            ev.id,
            ev.type,
            ev.occurred_on,
            ev.source,
            ev.quantity,
            ev.ended_on,
            ev.refers_to,
            repaired_on,
            credit,
            exits,
        )

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


class SubjectState(NamedTuple):
    """What one subject's scoring still needs, under one rulebook version, valid at ``as_of``.

    Immutable; a tuple rather than a dataclass because one is read and one written per event.
    """

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
    next_expiry: date | None = None  # no live event expires before it (None: none live)

    def to_bytes(self) -> bytes:
        """The stored form (module docstring): deterministic and compact."""
        return _encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> SubjectState:
        """Read a stored state; :class:`SubjectStateError` if it is not one this code reads."""
        if not data or data[0] != STATE_FORMAT:
            raise SubjectStateError(f"not a subject state of format {STATE_FORMAT}")
        try:
            state, end = _decode(data)
        except (struct.error, ValueError, IndexError, OverflowError) as e:
            raise SubjectStateError(f"not a readable subject state: {e}") from e
        if end != len(data):
            raise SubjectStateError("a subject state with trailing bytes")
        return state


# --- the stored form ------------------------------------------------------------------------------


_TEXTS: dict[str, bytes] = {}  # names (types, sources, cap keys, versions) → their stored form
_NAMES: dict[bytes, str] = {}  # and back: a small vocabulary, and shared strings hash once


def _text(value: str) -> bytes:
    found = _TEXTS.get(value)
    if found is None:
        raw = value.encode()
        found = _U2.pack(len(raw)) + raw
        if len(_TEXTS) < 10_000:
            _TEXTS[value] = found
    return found


def _name(raw: bytes) -> str:
    found = _NAMES.get(raw)
    if found is None:
        found = raw.decode()
        if len(_NAMES) < 10_000:
            _NAMES[raw] = found
    return found


def _id(value: str) -> bytes:
    """An id; a lowercase hex one (the service's 40-digit ids) in half the bytes."""
    if len(value) % 2 == 0 and len(value) < 2 * (_HEX_ID - 1):
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = b""
        if raw and raw.hex() == value:
            return _U2.pack(_HEX_ID | len(raw)) + raw
    raw = value.encode()
    if len(raw) >= _HEX_ID:
        raise SubjectStateError(f"an id of {len(raw)} bytes cannot be stored")
    return _U2.pack(len(raw)) + raw


def _read_id(data: bytes, at: int) -> tuple[str, int]:
    (size,) = _U2.unpack_from(data, at)
    at += 2
    if size & _HEX_ID:
        size &= ~_HEX_ID
        return data[at : at + size].hex(), at + size
    return data[at : at + size].decode(), at + size


def _encode(state: SubjectState) -> bytes:
    strings: dict[str, int] = {}
    table = strings.setdefault
    out: list[bytes] = []
    position: dict[str, int] = {}
    for i, le in enumerate(state.live):
        position[le.id] = i
        ended, repaired, credit, refers_to, exits = (
            le.ended_on,
            le.repaired_on,
            le.credit,
            le.refers_to,
            le.exits,
        )
        flags = (
            (ended is not None)
            | (repaired is not None) << 1
            | (credit is not None) << 2
            | (refers_to is not None) << 3
            | bool(exits) << 4
        )
        out.append(
            _LIVE.pack(
                table(le.type, len(strings)),
                table(le.source, len(strings)),
                le.occurred_on.toordinal() - _EPOCH,
                le.quantity,
                flags,
            )
        )
        if ended is not None:
            out.append(_I4.pack(ended.toordinal() - _EPOCH))
        if repaired is not None:
            out.append(_I4.pack(repaired.toordinal() - _EPOCH))
        if credit is not None:
            out.append(_I4.pack(credit))
        out.append(_id(le.id))
        if refers_to is not None:
            out.append(_id(refers_to))
        if exits:
            out.append(_U2.pack(len(exits)))
            for day, exit_id in exits:
                out += (_I4.pack(day.toordinal() - _EPOCH), _id(exit_id))
    for key, window in state.caps:
        out.append(_CAP.pack(table(key, len(strings)), _out(window.horizon), len(window.credits)))
        for c in window.credits:
            at = position.get(c.event_id, _ABSENT)
            released = c.released_on
            out.append(_CREDIT.pack(at, c.credit, released is not None))
            if released is not None:
                out.append(_I4.pack(released.toordinal() - _EPOCH))
            if at == _ABSENT:
                out += (_I4.pack(_out(c.occurred_on)), _id(c.event_id))
    for orphan in state.orphan_exits:
        out += (_I4.pack(_out(orphan.occurred_on)), _id(orphan.listing_id), _id(orphan.event_id))
    history = state.history
    dates = [
        _out(day)
        for day in (
            state.future_on,
            history.latest_negative,
            history.latest_removal,
            state.red_entered,
            state.red_decided_on,
            state.next_expiry,
        )
    ]
    head = _HEADER.pack(
        STATE_FORMAT,
        _KIND_CODES[state.subject],
        _out(state.as_of),
        sum(1 << i for i, d in enumerate(dates) if d != _NONE),
        len(strings),
        len(state.live),
        len(state.orphan_exits),
        len(state.caps),
    )
    present = [_I4.pack(d) for d in dates if d != _NONE]
    return b"".join([head, *present, _text(state.rulebook_version), *map(_text, strings), *out])


def _decode(data: bytes) -> tuple[SubjectState, int]:
    _f, kind, as_of, present, n_strings, n_live, n_orphans, n_caps = _HEADER.unpack_from(data, 0)
    at = _HEADER.size
    # future_on, latest_negative, latest_removal, red_entered, red_decided_on, next_expiry
    dates: list[date | None] = [None] * 6
    if present:
        days = _PRESENT[present].unpack_from(data, at)
        at += 4 * len(days)
        found = iter(days)
        for bit in range(6):
            if present >> bit & 1:
                dates[bit] = _day(next(found))
    future_on, negative, removal, entered, decided, expiry = dates
    strings: list[str] = []
    for _ in range(n_strings + 1):  # the rulebook version first
        (size,) = _U2.unpack_from(data, at)
        strings.append(_name(data[at + 2 : at + 2 + size]))
        at += 2 + size
    version = strings.pop(0)
    day, read_id, unpack_live, live_size, unpack_i4 = (
        _day,
        _read_id,
        _LIVE.unpack_from,
        _LIVE.size,
        _I4.unpack_from,
    )
    live: list[LiveEvent] = []
    for _ in range(n_live):
        type_, source, occurred, quantity, flags = unpack_live(data, at)
        at += live_size
        ended = repaired = None
        credit = None
        if flags & 7:
            if flags & 1:
                ended = day(unpack_i4(data, at)[0])
                at += 4
            if flags & 2:
                repaired = day(unpack_i4(data, at)[0])
                at += 4
            if flags & 4:
                credit = unpack_i4(data, at)[0]
                at += 4
        event_id, at = read_id(data, at)
        refers_to = None
        exits: tuple[tuple[date, str], ...] = ()
        if flags & 24:
            if flags & 8:
                refers_to, at = read_id(data, at)
            if flags & 16:
                (n_exits,) = _U2.unpack_from(data, at)
                at += 2
                pairs = []
                for _e in range(n_exits):
                    exit_day = day(unpack_i4(data, at)[0])
                    exit_id, at = read_id(data, at + 4)
                    pairs.append((exit_day, exit_id))
                exits = tuple(pairs)
        live.append(
            LiveEvent(
                event_id,
                strings[type_],
                day(occurred),
                strings[source],
                quantity,
                ended,
                refers_to,
                repaired,
                credit,
                exits,
            )
        )
    caps: list[tuple[str, CapWindow]] = []
    for _ in range(n_caps):
        key, horizon, n_credits = _CAP.unpack_from(data, at)
        at += _CAP.size
        credits = []
        for _c in range(n_credits):
            index, credit, has_released = _CREDIT.unpack_from(data, at)
            at += _CREDIT.size
            released = None
            if has_released:
                released = day(unpack_i4(data, at)[0])
                at += 4
            if index == _ABSENT:
                occurred_on = day(unpack_i4(data, at)[0])
                event_id, at = read_id(data, at + 4)
            else:
                occurred_on, event_id = live[index].occurred_on, live[index].id
            credits.append(Credited(occurred_on, event_id, credit, released))
        caps.append((strings[key], CapWindow(day(horizon), tuple(credits))))
    orphans = []
    for _ in range(n_orphans):
        (occurred,) = _I4.unpack_from(data, at)
        listing_id, at = read_id(data, at + 4)
        exit_id, at = read_id(data, at)
        orphans.append(OrphanExit(listing_id, day(occurred), exit_id))
    if kind > 1:
        raise ValueError(f"unknown subject kind {kind}")
    state = SubjectState(
        version,
        _KINDS[kind],
        day(as_of),
        tuple(live),
        tuple(caps),
        tuple(orphans),
        History(negative, removal),
        entered,
        decided,
        future_on,
        expiry,
    )
    return state, at
