"""The rulebook: the shipped default loads, its canonical hash is stable and sensitive, and every
validation error names the bad entry by its dotted location.

Validation cases are table-driven: load ``default.toml`` with :mod:`tomllib`, change one thing,
validate with :func:`credit.rulebook.rulebook_from_data`, and expect a
:class:`~credit.errors.RulebookError` whose message contains the location of that one thing.
"""

from __future__ import annotations

import copy
import json
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from gmssl import func as gmssl_func
from gmssl import sm3 as gmssl_sm3
from pydantic import ValidationError

import credit.rulebook
from credit.errors import RulebookError
from credit.identifiers import SubjectKind
from credit.rulebook import (
    SHIPPED_VERSIONS,
    CapRule,
    Category,
    Rulebook,
    default_rulebook,
    default_rulebook_text,
    load_rulebook,
    parse_rulebook,
    rulebook_from_data,
    shipped_rulebook,
)

RULEBOOKS = Path(credit.rulebook.__file__).parent / "rulebooks"
DEFAULT_PATH = RULEBOOKS / "default.toml"
#: SM3 of rulebook 2026.1's canonical JSON as deployments recorded it on their ledgers (computed
#: before any later field existed). It must never change: old scores replay against it.
HASH_2026_1 = "6604ab490ad237e09c2d7830f5771305742ef24f987cbad0241c74ef423e00e3"


def default_data() -> dict[str, Any]:
    """A fresh, mutable copy of the default rulebook's parsed TOML."""
    with DEFAULT_PATH.open("rb") as f:
        return tomllib.load(f)


def _walk(data: Any, path: str) -> tuple[Any, str | int]:
    """The container holding the last part of dotted ``path`` and that part (list indices as ints)."""
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = data
    for part in parts[:-1]:
        node = node[part]
    return node, parts[-1]


def set_at(data: Any, path: str, value: Any) -> None:
    node, last = _walk(data, path)
    node[last] = value


def del_at(data: Any, path: str) -> None:
    node, last = _walk(data, path)
    del node[last]


# --- the default ------------------------------------------------------------------------------


def test_default_rulebook_loads() -> None:
    rb = default_rulebook()
    assert rb.version == "2026.2"
    assert rb.cap_rule is CapRule.ROLLING
    assert (rb.scale.min, rb.scale.max, rb.scale.base, rb.scale.black_list_cap) == (0, 1000, 700, 599)
    assert [(level.name, level.min) for level in rb.levels] == [
        ("AAA", 850),
        ("AA", 780),
        ("A", 700),
        ("B", 600),
        ("C", 450),
        ("D", 0),
    ]
    assert {k: t.counts_months for k, t in rb.tiers.items()} == {
        "minor": 3,
        "general": 12,
        "serious": 36,
        "financial": 60,
    }
    assert rb.tiers["financial"].repair_after_months is None
    # Every category of the plan has at least one event type.
    assert {et.category for et in rb.event_types.values()} == set(Category)
    assert rb.red_list.min_level == "AA"
    assert rb.black_lists["court_defaulters"].max_months == 24
    assert set(rb.scenarios) == {m.scenario for m in rb.measures.values()}
    # The abnormal-operations list is a watch list, not a black list (CREDIT-RULES.md).
    assert set(rb.black_lists) == {"court_defaulters", "market_serious_violation", "tax_major_violation"}
    listed = rb.event_types["abnormal_operations_listed"]
    assert (listed.points, listed.black_list, listed.watch_list) == (-30, None, "abnormal_operations")
    assert rb.list_entered(listed) == rb.watch_lists["abnormal_operations"]


def test_default_rulebook_same_from_every_entry_point(tmp_path: Path) -> None:
    copy_path = tmp_path / "copy.toml"
    copy_path.write_text(default_rulebook_text(), encoding="utf-8")
    rb = default_rulebook()
    assert load_rulebook(DEFAULT_PATH) == rb
    assert load_rulebook(copy_path) == rb
    assert parse_rulebook(default_rulebook_text()) == rb
    assert rulebook_from_data(default_data()) == rb


def test_rulebook_is_immutable() -> None:
    rb = default_rulebook()
    with pytest.raises(ValidationError):
        rb.version = "2027.1"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        rb.scale.base = 500  # type: ignore[misc]


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (1000, "AAA"),
        (850, "AAA"),
        (849, "AA"),
        (780, "AA"),
        (779, "A"),
        (700, "A"),
        (699, "B"),
        (600, "B"),
        (599, "C"),
        (450, "C"),
        (449, "D"),
        (0, "D"),
        (-5, "D"),  # below every level: the lowest one
    ],
)
def test_level_of(score: int, level: str) -> None:
    assert default_rulebook().level_of(score) == level


def test_level_min() -> None:
    rb = default_rulebook()
    assert rb.level_min("AA") == 780
    with pytest.raises(RulebookError) as info:
        rb.level_min("E")
    assert info.value.reason == "unknown-level"


# --- canonical form and hash -------------------------------------------------------------------


def test_canonical_json_same_bytes_twice() -> None:
    first, second = default_rulebook(), parse_rulebook(default_rulebook_text())
    assert first is not second
    assert first.canonical_json() == second.canonical_json()
    assert first.canonical_hash() == second.canonical_hash()
    assert len(first.canonical_hash()) == 32


def test_canonical_json_is_sorted_compact_json() -> None:
    rb = default_rulebook()
    text = rb.canonical_json()
    # For this data (no floats) RFC 8785 equals sorted, compact, non-ASCII-preserving JSON.
    expected = json.dumps(
        rb.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert text == expected.encode("utf-8")
    assert text.startswith(b'{"black_lists":')
    assert b'"effective_from":"2026-12-01"' in text
    assert b'"cap_rule":"rolling"' in text
    assert "诚信优秀".encode() in text


def test_canonical_hash_is_sm3_of_canonical_json() -> None:
    rb = default_rulebook()
    independent = gmssl_sm3.sm3_hash(gmssl_func.bytes_to_list(rb.canonical_json()))
    assert rb.canonical_hash().hex() == independent


def test_canonical_json_round_trips() -> None:
    rb = default_rulebook()
    again = rulebook_from_data(json.loads(rb.canonical_json()))
    assert again == rb
    assert again.canonical_hash() == rb.canonical_hash()


def test_canonical_hash_ignores_formatting_and_key_order() -> None:
    rb = default_rulebook()
    # Comments and blank lines are not part of the rulebook.
    assert parse_rulebook(default_rulebook_text() + "\n\n# a trailing comment\n").canonical_hash() == (
        rb.canonical_hash()
    )
    # Neither is the order of table keys.
    data = default_data()
    reordered = {key: data[key] for key in reversed(list(data))}
    reordered["event_types"] = dict(reversed(list(data["event_types"].items())))
    reordered["measures"] = dict(reversed(list(data["measures"].items())))
    assert rulebook_from_data(reordered).canonical_hash() == rb.canonical_hash()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("scale.base", 701),
        ("scale.black_list_cap", 598),
        ("levels.0.min", 851),
        ("tiers.general.counts_months", 13),
        ("event_types.contract_default.points", -21),
        ("event_types.volunteer_service.max_quantity", 6),
        ("caps.volunteer.limit", 49),
        ("caps.arrears.window_months", 24),
        ("black_lists.court_defaulters.max_months", 36),
        ("red_list.clean_years", 2),
        ("deadlines.objection_answer_working_days", 11),
        ("version", "2026.3"),
        ("effective_from", date(2026, 12, 2)),
        ("cap_rule", "calendar-blocks"),
        ("watch_lists.abnormal_operations.max_months", 24),
    ],
)
def test_canonical_hash_changes_with_one_value(path: str, value: Any) -> None:
    base = default_rulebook().canonical_hash()
    data = default_data()
    set_at(data, path, value)
    changed = rulebook_from_data(data)
    assert changed.canonical_hash() != base
    assert changed.canonical_json() != default_rulebook().canonical_json()


def test_canonical_hash_covers_labels() -> None:
    data = default_data()
    set_at(data, "levels.0.label", "excellent")
    assert rulebook_from_data(data).canonical_hash() != default_rulebook().canonical_hash()


# --- earlier versions: recorded rulebooks keep replaying ------------------------------------------


def test_shipped_2026_1_keeps_its_recorded_hash() -> None:
    rb = shipped_rulebook("2026.1")
    assert rb.version == "2026.1"
    assert rb.cap_rule is CapRule.CALENDAR_BLOCKS
    assert rb.canonical_hash().hex() == HASH_2026_1
    # No field added after 2026.1 appears in its canonical form.
    text = rb.canonical_json()
    assert b"cap_rule" not in text and b"watch_list" not in text
    assert "abnormal_operations" in rb.black_lists  # 2026.1 as recorded: a black list then


def test_2026_1_revalidates_from_its_stored_json() -> None:
    # What a deployment stored at activation: the canonical JSON, without cap_rule.
    stored = json.loads(shipped_rulebook("2026.1").canonical_json())
    assert "cap_rule" not in stored
    again = rulebook_from_data(stored)
    assert again.cap_rule is CapRule.CALENDAR_BLOCKS  # absent means the legacy rule
    assert again.canonical_hash().hex() == HASH_2026_1


def test_later_fields_at_their_default_are_left_out_of_the_canonical_form() -> None:
    data = json.loads(shipped_rulebook("2026.1").canonical_json())
    data["cap_rule"] = "calendar-blocks"
    data["watch_lists"] = {}
    data["event_types"]["contract_default"]["watch_list"] = None
    assert rulebook_from_data(data).canonical_hash().hex() == HASH_2026_1
    # A value other than the default is part of the rulebook, and of its hash.
    data["cap_rule"] = "rolling"
    rolling = rulebook_from_data(data)
    assert rolling.canonical_hash().hex() != HASH_2026_1
    assert b'"cap_rule":"rolling"' in rolling.canonical_json()


def test_legacy_caps_may_still_combine_with_highest_only() -> None:
    # The rolling rule refuses the combination; a rulebook under the legacy rule validates as before.
    data = json.loads(shipped_rulebook("2026.1").canonical_json())
    data["event_types"]["honour_street"]["cap"] = "volunteer"
    assert rulebook_from_data(data).event_types["honour_street"].cap == "volunteer"


def test_shipped_versions_and_the_default() -> None:
    assert SHIPPED_VERSIONS == ("2026.1",)
    assert default_rulebook().version not in SHIPPED_VERSIONS
    with pytest.raises(RulebookError) as info:
        shipped_rulebook("1999.9")
    assert info.value.reason == "unknown-rulebook"
    assert "2026.1" in info.value.message


def test_a_toml_rulebook_must_name_its_cap_rule() -> None:
    text = default_rulebook_text().replace('cap_rule = "rolling"\n', "", 1)
    assert "cap_rule =" not in text
    with pytest.raises(RulebookError) as info:
        parse_rulebook(text)
    assert info.value.reason == "invalid-rulebook"
    assert info.value.message.startswith("cap_rule: ")
    assert "'rolling'" in info.value.message and "'calendar-blocks'" in info.value.message


# --- validation: each error names the bad entry ----------------------------------------------------

Op = tuple[str, str, Any]  # ("set", path, value) | ("del", path, None)


def _swap_top_levels(data: dict[str, Any]) -> None:
    data["levels"][0], data["levels"][1] = data["levels"][1], data["levels"][0]


def _add_badly_named_event_type(data: dict[str, Any]) -> None:
    data["event_types"]["Bad-Key"] = copy.deepcopy(data["event_types"]["contract_default"])


INVALID: list[Any] = [
    pytest.param(
        [("set", "event_types.contract_default.tier", "grave")],
        "event_types.contract_default.tier",
        "unknown tier 'grave'",
        id="unknown-tier",
    ),
    pytest.param(
        [("set", "caps.volunteer.limit", -50)],
        "event_types.volunteer_service.cap",
        "sign differs",
        id="cap-sign-mismatch-positive-event",
    ),
    pytest.param(
        [("set", "caps.arrears.limit", 60)],
        "event_types.loan_arrears.cap",
        "sign differs",
        id="cap-sign-mismatch-negative-event",
    ),
    pytest.param([("call", "", _swap_top_levels)], "levels", "strictly decreasing", id="levels-out-of-order"),
    pytest.param([("set", "levels.1.min", 850)], "levels", "strictly decreasing", id="levels-duplicate-min"),
    pytest.param([("set", "levels", [])], "levels", "strictly decreasing", id="levels-empty"),
    pytest.param([("set", "levels.5.min", 1)], "levels", "lowest level", id="levels-lowest-above-min"),
    pytest.param([("set", "scale.base", 1001)], "scale", "base must lie within", id="base-above-scale"),
    pytest.param([("set", "scale.base", -1)], "scale", "base must lie within", id="base-below-scale"),
    pytest.param(
        [("set", "scale.black_list_cap", 1200)], "scale", "black_list_cap must lie", id="black-cap-outside"
    ),
    pytest.param(
        [("set", "measures.parking_pay_later.scenario", "car_wash")],
        "measures.parking_pay_later.scenario",
        "unknown scenario 'car_wash'",
        id="unknown-scenario",
    ),
    pytest.param(
        [("set", "red_list.min_level", "AB")], "red_list.min_level", "unknown level 'AB'", id="red-min-level"
    ),
    pytest.param(
        [("set", "red_list.removal_tiers", ["grave"])],
        "red_list.removal_tiers",
        "unknown tier 'grave'",
        id="red-removal-tier",
    ),
    pytest.param(
        [("set", "measures.parking_pay_later.when", {})],
        "measures.parking_pay_later.when",
        "at least one test",
        id="empty-when",
    ),
    pytest.param(
        [("set", "event_types.contract_default.colour", "red")],
        "event_types.contract_default.colour",
        "Extra inputs are not permitted",
        id="extra-key-in-event-type",
    ),
    pytest.param([("set", "colour", "red")], "colour", "Extra inputs are not permitted", id="extra-top-key"),
    pytest.param(
        [("set", "measures.licence_ban.when.colour", "red")],
        "measures.licence_ban.when.colour",
        "Extra inputs are not permitted",
        id="extra-key-in-condition",
    ),
    pytest.param(
        [
            ("del", "event_types.industry_commendation.counts_months", None),
            ("set", "event_types.industry_commendation.tier", "general"),
        ],
        "event_types.industry_commendation",
        "severity tiers are for negative events",
        id="positive-event-with-tier",
    ),
    pytest.param(
        [("set", "event_types.contract_default.sources", [])],
        "event_types.contract_default",
        "name the source roles",
        id="no-sources",
    ),
    pytest.param(
        [("del", "event_types.sued_in_breach.sources", None)],
        "event_types.sued_in_breach",
        "name the source roles",
        id="sources-missing",
    ),
    pytest.param(
        [("set", "event_types.contract_default.sources", ["court", "astrologer"])],
        "event_types.contract_default.sources",
        "unknown source role 'astrologer'",
        id="unknown-source-role",
    ),
    pytest.param(
        [("set", "event_types.contract_default.counts_months", 12)],
        "event_types.contract_default",
        "exactly one of tier",
        id="tier-and-counts-months",
    ),
    pytest.param(
        [("del", "event_types.contract_default.tier", None)],
        "event_types.contract_default",
        "exactly one of tier",
        id="neither-tier-nor-counts-months",
    ),
    pytest.param(
        [("set", "event_types.volunteer_service.cap", "nope")],
        "event_types.volunteer_service.cap",
        "unknown cap 'nope'",
        id="unknown-cap",
    ),
    pytest.param(
        [("set", "event_types.court_defaulter_listed.black_list", "nope")],
        "event_types.court_defaulter_listed.black_list",
        "unknown black list 'nope'",
        id="unknown-black-list",
    ),
    pytest.param(
        [("set", "event_types.abnormal_operations_listed.watch_list", "nope")],
        "event_types.abnormal_operations_listed.watch_list",
        "unknown watch list 'nope'",
        id="unknown-watch-list",
    ),
    pytest.param(
        [("set", "event_types.abnormal_operations_listed.black_list", "court_defaulters")],
        "event_types.abnormal_operations_listed",
        "black_list or watch_list, not both",
        id="black-and-watch-list",
    ),
    pytest.param(
        [("set", "event_types.abnormal_operations_listed.tier", "general")],
        "event_types.abnormal_operations_listed",
        "counts while listed",
        id="watch-listing-with-tier",
    ),
    pytest.param(
        [("set", "event_types.abnormal_operations_removed.watch_list", "abnormal_operations")],
        "event_types.abnormal_operations_removed",
        "listing-exit event has no points",
        id="listing-exit-with-a-list",
    ),
    pytest.param(
        [("set", "event_types.honour_street.cap", "volunteer")],
        "event_types.honour_street",
        "a rolling cap and a highest_only group cannot be combined",
        id="rolling-cap-with-highest-only",
    ),
    pytest.param(
        [("set", "cap_rule", "per-decade")],
        "cap_rule",
        "'rolling' or 'calendar-blocks'",
        id="unknown-cap-rule",
    ),
    pytest.param(
        [("set", "event_types.court_defaulter_delisted.points", -5)],
        "event_types.court_defaulter_delisted",
        "listing-exit event has no points",
        id="listing-exit-with-points",
    ),
    pytest.param(
        [("del", "event_types.volunteer_service.unit", None)],
        "event_types.volunteer_service",
        "max_quantity > 1 needs a unit",
        id="quantity-without-unit",
    ),
    pytest.param(
        [("set", "event_types.volunteer_service.max_quantity", 0)],
        "event_types.volunteer_service.max_quantity",
        "greater than or equal to 1",
        id="max-quantity-zero",
    ),
    pytest.param([("set", "caps.blood.limit", 0)], "caps.blood", "a cap of 0", id="zero-cap"),
    pytest.param(
        [("set", "measures.parking_pay_later.when.min_level", "E")],
        "measures.parking_pay_later.when.min_level",
        "unknown level 'E'",
        id="measure-unknown-level",
    ),
    pytest.param(
        [("set", "measures.procurement_bar.when.black_list", "nope")],
        "measures.procurement_bar.when.black_list",
        "unknown black list 'nope'",
        id="measure-unknown-black-list",
    ),
    pytest.param(
        [("set", "measures.licence_ban.when.active_event", "nope")],
        "measures.licence_ban.when.active_event",
        "unknown event type 'nope'",
        id="measure-unknown-active-event",
    ),
    pytest.param(
        [("set", "measures.parking_pay_later.kind", "bonus")],
        "measures.parking_pay_later.kind",
        "'reward' or 'punishment'",
        id="measure-kind",
    ),
    pytest.param(
        [("set", "measures.library_deposit_free.when.subject", "alien")],
        "measures.library_deposit_free.when.subject",
        "",
        id="condition-subject",
    ),
    pytest.param(
        [("set", "event_types.contract_default.category", "gossip")],
        "event_types.contract_default.category",
        "",
        id="unknown-category",
    ),
    pytest.param(
        [("call", "", _add_badly_named_event_type)],
        "event_types.Bad-Key",
        "should match pattern",
        id="bad-event-key",
    ),
    pytest.param([("set", "version", "2026 1")], "version", "should match pattern", id="bad-version"),
    pytest.param(
        [("set", "tiers.minor.counts_months", 0)],
        "tiers.minor.counts_months",
        "greater than 0",
        id="tier-zero-months",
    ),
    pytest.param([("del", "deadlines", None)], "deadlines", "Field required", id="missing-section"),
    pytest.param(
        [("set", "scale.base", "seven hundred")], "scale.base", "valid integer", id="base-not-integer"
    ),
]


@pytest.mark.parametrize(("ops", "location", "fragment"), INVALID)
def test_validation_error_names_the_entry(ops: list[Op], location: str, fragment: str) -> None:
    data = default_data()
    for op, path, value in ops:
        if op == "set":
            set_at(data, path, value)
        elif op == "del":
            del_at(data, path)
        else:
            value(data)
    with pytest.raises(RulebookError) as info:
        rulebook_from_data(data)
    error = info.value
    assert error.reason == "invalid-rulebook"
    assert location in error.message
    assert fragment in error.message
    # One problem, so no "(and N more problems)" suffix.
    assert "more problems" not in error.message
    assert error.diagnostics().startswith("RulebookError [invalid-rulebook]: ")


def test_validation_error_location_leads_the_message() -> None:
    # Field errors start with their own location; cross-reference errors (found by the
    # rulebook-wide check) start with "rulebook:" and then name the entry.
    data = default_data()
    set_at(data, "tiers.minor.counts_months", 0)
    with pytest.raises(RulebookError, match=r"^tiers\.minor\.counts_months: "):
        rulebook_from_data(data)
    data = default_data()
    set_at(data, "event_types.contract_default.tier", "grave")
    with pytest.raises(RulebookError, match=r"^rulebook: event_types\.contract_default\.tier: unknown tier"):
        rulebook_from_data(data)


def test_validation_error_counts_further_problems() -> None:
    data = default_data()
    set_at(data, "colour", "red")
    set_at(data, "shade", "dark")
    set_at(data, "tiers.minor.counts_months", 0)
    with pytest.raises(RulebookError) as info:
        rulebook_from_data(data)
    assert "(and 2 more problems)" in info.value.message


def test_validation_error_is_chained_to_pydantic() -> None:
    data = default_data()
    set_at(data, "scale.base", 1001)
    with pytest.raises(RulebookError) as info:
        rulebook_from_data(data)
    assert isinstance(info.value.__cause__, ValidationError)


def test_data_must_be_a_table() -> None:
    with pytest.raises(RulebookError) as info:
        rulebook_from_data(["not", "a", "table"])
    assert info.value.reason == "invalid-rulebook"
    assert info.value.message.startswith("rulebook: ")


def test_mutations_do_not_leak_between_cases() -> None:
    # default_data() reads the file afresh; a deepcopy of it validates unchanged.
    data = default_data()
    assert rulebook_from_data(copy.deepcopy(data)) == default_rulebook()


def test_subject_kinds_parse_as_enum() -> None:
    rb = default_rulebook()
    assert rb.event_types["volunteer_service"].subjects == (SubjectKind.PERSON,)
    assert rb.measures["transport_discount"].when.subject is SubjectKind.PERSON
    assert isinstance(rb, Rulebook)


# --- reading files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "version = ",
        'version = "2026.1"\nversion = "2026.2"\n',  # duplicate key
        "[scale\nmin = 0\n",
        default_rulebook_text().replace("[scale]", "[scale", 1),
    ],
    ids=["missing-value", "duplicate-key", "unclosed-table", "broken-default"],
)
def test_invalid_toml_is_a_syntax_error(text: str) -> None:
    with pytest.raises(RulebookError) as info:
        parse_rulebook(text)
    assert info.value.reason == "rulebook-syntax"
    assert "not valid TOML" in info.value.message
    assert isinstance(info.value.__cause__, tomllib.TOMLDecodeError)


def test_invalid_toml_file_is_a_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("version = \n", encoding="utf-8")
    with pytest.raises(RulebookError) as info:
        load_rulebook(path)
    assert info.value.reason == "rulebook-syntax"


def test_valid_toml_invalid_rulebook_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(default_rulebook_text().replace("base = 700", "base = 1700", 1), encoding="utf-8")
    with pytest.raises(RulebookError) as info:
        load_rulebook(path)
    assert info.value.reason == "invalid-rulebook"
    assert "scale" in info.value.message


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    with pytest.raises(RulebookError) as info:
        load_rulebook(path)
    assert info.value.reason == "rulebook-unreadable"
    assert str(path) in info.value.message


def test_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(RulebookError) as info:
        load_rulebook(tmp_path)
    assert info.value.reason == "rulebook-unreadable"


def test_non_utf8_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('title = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(RulebookError) as info:
        load_rulebook(path)
    assert info.value.reason == "rulebook-unreadable"
