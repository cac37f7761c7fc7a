"""The rulebook: every number the credit engine uses, as versioned, validated data.

A rulebook is a TOML file (``credit/rulebooks/default.toml`` is the shipped default, taken from
CREDIT-RULES.md; earlier shipped versions stay beside it as ``<version>.toml`` because recorded
scores replay under them). :func:`parse_rulebook` validates it completely, naming the bad entry
in the error; :func:`canonical_hash` is the SM3 hash of its RFC 8785 canonical JSON form, the
value a ``credit_rulebook`` ledger record commits to and every score refers to.

Compatibility: a rulebook recorded on a ledger is re-validated from its stored canonical JSON and
must hash to the recorded value. A field added after 2026.1 therefore has a default that keeps
the old meaning, and is left out of the canonical JSON while it holds that default (see
``_Model``), so every rulebook written before it keeps its bytes and its hash.
"""

from __future__ import annotations

import tomllib
from datetime import date
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import rfc8785
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from credit.errors import RulebookError
from credit.identifiers import SubjectKind
from ledger.core.crypto import HashAlgorithm, digest_function

_KEY = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class Category(StrEnum):
    """The eight categories of credit information named by the plans."""

    BASIC = "basic"  # 个人基本信息
    COMMERCIAL = "commercial"  # 商业信用
    PUBLIC = "public"  # 社会公共
    PROFESSIONAL = "professional"  # 职业信用
    DISCIPLINE = "discipline"  # 组织纪律
    JUDICIAL = "judicial"  # 司法领域
    BAD_CONDUCT = "bad_conduct"  # 不良行为
    HONOURS = "honours"  # 个人荣誉


class CapRule(StrEnum):
    """How a category cap is applied (see :mod:`credit.engine_caps`)."""

    ROLLING = "rolling"  # no window of window_months earns more than the cap (CREDIT-RULES.md)
    # Wrong (events escape the cap as the date moves); the meaning of a rulebook that names no
    # cap rule, kept only so that scores recorded under such rulebooks (2026.1) replay exactly.
    CALENDAR_BLOCKS = "calendar-blocks"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Fields added after rulebook 2026.1: left out of the serialised (canonical) form while they
    #: hold their default, which keeps the old meaning, so older rulebooks keep their hashes.
    later_fields: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_later_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        fields = type(self).model_fields
        for name in self.later_fields:
            if getattr(self, name) == fields[name].default:
                data.pop(name, None)
        return data


class Scale(_Model):
    """The score range, the base of a new account, and the black-list ceiling."""

    min: int = 0
    max: int = 1000
    base: int
    black_list_cap: int

    @model_validator(mode="after")
    def _ordered(self) -> Scale:
        if not self.min <= self.base <= self.max:
            raise ValueError("base must lie within [min, max]")
        if not self.min <= self.black_list_cap <= self.max:
            raise ValueError("black_list_cap must lie within [min, max]")
        return self


class Level(_Model):
    """A credit level: scores at or above ``min`` (up to the next level) have this name."""

    name: Annotated[str, Field(pattern=r"^[A-Z]{1,4}$")]
    min: int
    label: str = ""


class Tier(_Model):
    """A severity tier (国办发〔2025〕22号): how long a negative event counts, when it can be repaired."""

    counts_months: Annotated[int, Field(gt=0, le=240)]
    repair_after_months: Annotated[int, Field(ge=0, le=240)] | None = None  # None: no repair route
    from_end_of_conduct: bool = False  # counts from the event's ended_on (financial defaults)
    label: str = ""


class EventType(_Model):
    """One kind of credit event and what it does to a score."""

    later_fields: ClassVar[frozenset[str]] = frozenset({"watch_list"})

    label: str
    category: Category
    points: int
    tier: _KEY | None = None
    counts_months: Annotated[int, Field(gt=0, le=240)] | None = None
    unit: str | None = None  # e.g. "star", "100 ml": points are per unit, quantity says how many
    max_quantity: Annotated[int, Field(ge=1, le=1000)] = 1
    cap: _KEY | None = None
    highest_only: _KEY | None = None
    black_list: _KEY | None = None  # entering a black list (only lawful source lists)
    watch_list: _KEY | None = None  # entering a source list that black-lists nobody (经营异常名录)
    ends_listing: bool = False  # a source list's exit: ends the listing event it refers to
    counts_after_exit_months: Annotated[int, Field(ge=0, le=240)] = 0
    subjects: tuple[SubjectKind, ...] = (SubjectKind.PERSON, SubjectKind.ORGANIZATION)
    sources: tuple[_KEY, ...] = ()  # source roles that may report it
    red_list_qualifier: bool = False  # an organization's red list needs one active qualifier

    @model_validator(mode="after")
    def _consistent(self) -> EventType:
        if self.ends_listing:
            if self.points != 0 or self.source_list or self.tier or self.counts_months:
                raise ValueError("a listing-exit event has no points, tier, period or list of its own")
            return self
        if self.black_list is not None and self.watch_list is not None:
            raise ValueError("a listing enters one list: give black_list or watch_list, not both")
        if self.source_list is not None and (self.tier is not None or self.counts_months is not None):
            raise ValueError("a listing counts while listed: give no tier or counts_months")
        if self.source_list is None and (self.tier is None) == (self.counts_months is None):
            raise ValueError("give exactly one of tier (negative events) or counts_months")
        if self.points > 0 and self.tier is not None:
            raise ValueError("severity tiers are for negative events; positive events use counts_months")
        if self.max_quantity > 1 and self.unit is None:
            raise ValueError("max_quantity > 1 needs a unit")
        if not self.sources:
            raise ValueError("name the source roles that may report this event")
        return self

    @property
    def source_list(self) -> str | None:
        """The source list (black or watch) this event enters, if it is a listing.

        A listing counts while listed (plus ``counts_after_exit_months``); a listing-exit event
        (``ends_listing``) that refers to it ends it early.
        """
        return self.black_list or self.watch_list


class Cap(_Model):
    """A ceiling (or, when negative, a floor) on a group's points per rolling window."""

    limit: int
    window_months: Annotated[int, Field(gt=0, le=120)] = 12
    label: str = ""

    @model_validator(mode="after")
    def _nonzero(self) -> Cap:
        if self.limit == 0:
            raise ValueError("a cap of 0 would silence its events; remove the events instead")
        return self


class SourceList(_Model):
    """A list kept by a source (a court, the tax or market-regulation authority) and its exit rule."""

    name: str
    legal_basis: str
    max_months: Annotated[int, Field(gt=0, le=240)]  # listing ends after this unless the source ends it
    exit_rule: str


class BlackList(SourceList):
    """A lawful serious-dishonesty list (the only way onto a black list, 国办发〔2020〕49号)."""

    early_exit_after_months: Annotated[int, Field(ge=0, le=240)] | None = None


class WatchList(SourceList):
    """A source list that is not a serious-dishonesty list (经营异常名录): its entries count as
    negative events while listed and measures may weigh them, but it black-lists nobody."""


class RedList(_Model):
    """Red-list criteria (国发〔2016〕33号 "three clean years", reviewed yearly)."""

    min_level: str
    clean_years: Annotated[int, Field(ge=1, le=10)]
    review_month: Annotated[int, Field(ge=1, le=12)] = 1
    review_day: Annotated[int, Field(ge=1, le=28)] = 15
    removal_tiers: tuple[_KEY, ...] = ("serious",)
    organization_needs_qualifier: bool = True


class Condition(_Model):
    """When a measure applies; all given fields must hold."""

    min_level: str | None = None
    red_list: bool | None = None
    black_list: str | None = None  # a list key, or "any"
    clean_years: Annotated[int, Field(ge=1, le=10)] | None = None
    active_event: _KEY | None = None  # an event type that is currently counting
    subject: SubjectKind | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        if not any(v is not None for v in self.model_dump().values()):
            raise ValueError("a condition needs at least one test")
        return self


class Measure(_Model):
    """One reward or punishment measure (联合奖惩) and its legal basis."""

    scenario: _KEY
    kind: Literal["reward", "punishment"]
    effect: str
    legal_basis: str
    when: Condition


class Deadlines(_Model):
    """Workflow deadlines."""

    objection_answer_working_days: Annotated[int, Field(ge=1, le=60)]
    correction_working_days: Annotated[int, Field(ge=1, le=60)]
    repair_decision_working_days: Annotated[int, Field(ge=1, le=60)]
    repair_answer_working_days: Annotated[int, Field(ge=1, le=60)]
    reminder_working_days_before: Annotated[int, Field(ge=0, le=30)] = 2


class Intake(_Model):
    """Fields refused at intake (征信业管理条例 art. 14) and fields needing explicit consent."""

    forbidden_fields: tuple[str, ...]
    consent_fields: tuple[str, ...] = ()


class Rulebook(_Model):
    """A complete, validated rulebook."""

    later_fields: ClassVar[frozenset[str]] = frozenset({"cap_rule", "watch_lists"})

    version: Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]{0,39}$")]
    title: str
    effective_from: date
    scale: Scale
    levels: tuple[Level, ...]
    tiers: dict[_KEY, Tier]
    event_types: dict[_KEY, EventType]
    caps: dict[_KEY, Cap] = {}
    cap_rule: CapRule = CapRule.CALENDAR_BLOCKS  # absent from rulebooks before 2026.2: the legacy rule
    black_lists: dict[_KEY, BlackList] = {}
    watch_lists: dict[_KEY, WatchList] = {}
    red_list: RedList
    measures: dict[_KEY, Measure]
    scenarios: dict[_KEY, str]
    deadlines: Deadlines
    intake: Intake
    source_roles: dict[_KEY, str]

    @model_validator(mode="after")
    def _references(self) -> Rulebook:
        mins = [level.min for level in self.levels]
        if not self.levels or mins != sorted(mins, reverse=True) or len(set(mins)) != len(mins):
            raise ValueError("levels: list them from highest to lowest with strictly decreasing min")
        if mins[-1] > self.scale.min:
            raise ValueError("levels: the lowest level must start at or below scale.min")
        names = {level.name for level in self.levels}
        for key, et in self.event_types.items():
            where = f"event_types.{key}"
            if et.tier is not None and et.tier not in self.tiers:
                raise ValueError(f"{where}.tier: unknown tier {et.tier!r}")
            if et.cap is not None and et.cap not in self.caps:
                raise ValueError(f"{where}.cap: unknown cap {et.cap!r}")
            if et.black_list is not None and et.black_list not in self.black_lists:
                raise ValueError(f"{where}.black_list: unknown black list {et.black_list!r}")
            if et.watch_list is not None and et.watch_list not in self.watch_lists:
                raise ValueError(f"{where}.watch_list: unknown watch list {et.watch_list!r}")
            for role in et.sources:
                if role not in self.source_roles:
                    raise ValueError(f"{where}.sources: unknown source role {role!r}")
            if et.cap is not None and (self.caps[et.cap].limit > 0) != (et.points > 0):
                raise ValueError(f"{where}.cap: the cap's sign differs from the event's points")
            if self.cap_rule is CapRule.ROLLING and et.cap is not None and et.highest_only is not None:
                # Which member of a highest-only group counts changes with the date; a rolling
                # cap's credit must not (it is fixed for the event's whole counting period).
                raise ValueError(f"{where}: a rolling cap and a highest_only group cannot be combined")
        if self.red_list.min_level not in names:
            raise ValueError(f"red_list.min_level: unknown level {self.red_list.min_level!r}")
        for tier in self.red_list.removal_tiers:
            if tier not in self.tiers:
                raise ValueError(f"red_list.removal_tiers: unknown tier {tier!r}")
        for key, m in self.measures.items():
            where = f"measures.{key}"
            if m.scenario not in self.scenarios:
                raise ValueError(f"{where}.scenario: unknown scenario {m.scenario!r}")
            if m.when.min_level is not None and m.when.min_level not in names:
                raise ValueError(f"{where}.when.min_level: unknown level {m.when.min_level!r}")
            if m.when.black_list not in (None, "any") and m.when.black_list not in self.black_lists:
                raise ValueError(f"{where}.when.black_list: unknown black list {m.when.black_list!r}")
            if m.when.active_event is not None and m.when.active_event not in self.event_types:
                raise ValueError(f"{where}.when.active_event: unknown event type {m.when.active_event!r}")
        return self

    def list_entered(self, et: EventType) -> SourceList | None:
        """The source list (black or watch) an event of type ``et`` enters, if it is a listing."""
        if et.black_list is not None:
            return self.black_lists[et.black_list]
        if et.watch_list is not None:
            return self.watch_lists[et.watch_list]
        return None

    def level_min(self, name: str) -> int:
        """The lowest score of level ``name``."""
        for level in self.levels:
            if level.name == name:
                return level.min
        raise RulebookError(f"unknown level {name!r}", reason="unknown-level")

    def level_of(self, score: int) -> str:
        """The level name of ``score``."""
        for level in self.levels:
            if score >= level.min:
                return level.name
        return self.levels[-1].name

    def canonical_json(self) -> bytes:
        """RFC 8785 canonical JSON of the whole rulebook (dates as ISO 8601 text)."""
        return bytes(rfc8785.dumps(self.model_dump(mode="json")))

    def canonical_hash(self) -> bytes:
        """SM3 of :meth:`canonical_json`: what the ledger's ``credit_rulebook`` record commits to."""
        return digest_function(HashAlgorithm.SM3)(self.canonical_json())


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "rulebook"


def rulebook_from_data(data: Any) -> Rulebook:
    """Validate parsed rulebook data; :class:`RulebookError` names the first bad entry."""
    try:
        return Rulebook.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        more = f" (and {e.error_count() - 1} more problems)" if e.error_count() > 1 else ""
        raise RulebookError(f"{_location(tuple(first['loc']))}: {message}{more}") from e


def parse_rulebook(text: str) -> Rulebook:
    """Parse and validate TOML rulebook text.

    A rulebook written as TOML must name its ``cap_rule``: left out, it would mean the legacy
    calendar-block rule (the meaning of stored rulebooks from before the field existed), and a
    new rulebook should not get a wrong rule by omission.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RulebookError(f"not valid TOML: {e}", reason="rulebook-syntax") from e
    if "cap_rule" not in data:
        rules = " or ".join(repr(rule.value) for rule in CapRule)
        raise RulebookError(
            f"cap_rule: name the cap rule ({rules}); 'rolling' is the rule of CREDIT-RULES.md, "
            "'calendar-blocks' only replays rulebooks from before 2026.2"
        )
    return rulebook_from_data(data)


def load_rulebook(path: Path) -> Rulebook:
    """Read and validate a rulebook file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RulebookError(f"cannot read rulebook {path}: {e}", reason="rulebook-unreadable") from e
    return parse_rulebook(text)


def default_rulebook_text() -> str:
    """The shipped default rulebook (CREDIT-RULES.md) as TOML text."""
    return resources.files("credit").joinpath("rulebooks/default.toml").read_text(encoding="utf-8")


def default_rulebook() -> Rulebook:
    """The shipped default rulebook."""
    return parse_rulebook(default_rulebook_text())


#: Earlier shipped defaults, kept because deployments recorded scores under them.
SHIPPED_VERSIONS = ("2026.1",)


def shipped_rulebook(version: str) -> Rulebook:
    """An earlier shipped default (:data:`SHIPPED_VERSIONS`), exactly as it was activated."""
    if version not in SHIPPED_VERSIONS:
        known = ", ".join(SHIPPED_VERSIONS)
        raise RulebookError(f"no shipped rulebook {version!r} (shipped: {known})", reason="unknown-rulebook")
    text = resources.files("credit").joinpath(f"rulebooks/{version}.toml").read_text(encoding="utf-8")
    return parse_rulebook(text)
