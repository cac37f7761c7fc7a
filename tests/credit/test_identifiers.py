"""Resident IDs (GB 11643-1999) and unified social credit codes (GB 32100-2015): table-driven rule
tests, published example codes, and properties over generated identifiers.

The check characters used to build test inputs come from reference implementations written out
here from the standards' formulas, not from the module under test.
"""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credit.errors import InvalidIdentifier
from credit.identifiers import (
    CreditCode,
    ResidentId,
    Sex,
    SubjectKind,
    credit_code_check_char,
    organization_code_check_char,
    parse_credit_code,
    parse_identifier,
    parse_resident_id,
    resident_id_check_char,
)

TODAY = date(2026, 11, 21)
PROVINCES = [11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46]
PROVINCES += [50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82]
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
AUTHORITIES = "123456789ABCDEFGNY"


# --- reference check characters, straight from the standards' formulas --------------------------


def ref_resident_check(body: str) -> str:
    """GB 11643-1999: weights 2^(17-i) mod 11, check = "10X98765432"[S mod 11]."""
    s = sum(int(c) * pow(2, 17 - i, 11) for i, c in enumerate(body))
    return "10X98765432"[s % 11]


def ref_uscc_check(body: str) -> str:
    """GB 32100-2015: weights 3^i mod 31, check = alphabet[(31 - S mod 31) mod 31]."""
    s = sum(ALPHABET.index(c) * pow(3, i, 31) for i, c in enumerate(body))
    return ALPHABET[(31 - s % 31) % 31]


def ref_org_check(body: str) -> str:
    """GB 11714-1997: weights 3 7 9 10 5 8 4 2 over values 0-35, C9 = 11 - S mod 11 (10 -> X, 11 -> 0)."""
    s = sum(int(c, 36) * w for c, w in zip(body, (3, 7, 9, 10, 5, 8, 4, 2), strict=True))
    return {10: "X", 11: "0"}.get(11 - s % 11, str(11 - s % 11))


def resident(body: str) -> str:
    return body + ref_resident_check(body)


def uscc(head: str, org8: str) -> str:
    """A credit code from its first 8 characters and an organization-code body, both checks valid."""
    body = head + org8 + ref_org_check(org8)
    return body + ref_uscc_check(body)


def expect_invalid(reason: str, call: object, *args: object, **kwargs: object) -> InvalidIdentifier:
    assert callable(call)
    with pytest.raises(InvalidIdentifier) as info:
        call(*args, **kwargs)
    assert info.value.reason == reason, info.value.diagnostics()
    return info.value


def test_reference_weights_match_the_published_tables() -> None:
    assert [pow(2, 17 - i, 11) for i in range(17)] == [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    assert [pow(3, i, 31) for i in range(17)] == [
        1,
        3,
        9,
        27,
        19,
        26,
        16,
        17,
        20,
        29,
        25,
        13,
        8,
        24,
        10,
        30,
        28,
    ]


# --- resident IDs --------------------------------------------------------------------------------


def test_standard_example_resident_id() -> None:
    rid = parse_resident_id("11010519491231002X", today=TODAY)
    assert rid == ResidentId(
        number="11010519491231002X", region_code="110105", birth_date=date(1949, 12, 31), sex=Sex.FEMALE
    )
    assert rid.kind is SubjectKind.PERSON
    assert rid.sex == "female"


@pytest.mark.parametrize(
    ("text", "number", "birth", "sex"),
    [
        ("11010519491231002X", "11010519491231002X", date(1949, 12, 31), "female"),
        ("  11010519491231002x\n", "11010519491231002X", date(1949, 12, 31), "female"),
        (resident("44030120000229001"), resident("44030120000229001"), date(2000, 2, 29), "male"),
        (resident("32010220240229123"), resident("32010220240229123"), date(2024, 2, 29), "male"),
        (resident("11010519000101000"), resident("11010519000101000"), date(1900, 1, 1), "female"),
        (resident("35010020261121004"), resident("35010020261121004"), TODAY, "female"),
        (resident("71000019800101001"), resident("71000019800101001"), date(1980, 1, 1), "male"),
        (resident("81000019800101001"), resident("81000019800101001"), date(1980, 1, 1), "male"),
        (resident("82000019800101001"), resident("82000019800101001"), date(1980, 1, 1), "male"),
        # residence permit for a Taiwan resident: region 830000
        (resident("83000019800101002"), resident("83000019800101002"), date(1980, 1, 1), "female"),
    ],
)
def test_valid_resident_ids(text: str, number: str, birth: date, sex: str) -> None:
    rid = parse_resident_id(text, today=TODAY)
    assert (rid.number, rid.birth_date, rid.sex, rid.region_code) == (number, birth, sex, number[:6])


@pytest.mark.parametrize(
    ("text", "reason", "message"),
    [
        ("", "resident-id-format", "0 characters"),
        ("11010519491231002", "resident-id-format", "17 characters"),
        ("11010519491231002X1", "resident-id-format", "19 characters"),
        ("110105194912310021X", "resident-id-format", "19 characters"),
        ("1101051949123100 2X", "resident-id-format", "19 characters"),
        ("1101051949123100AX", "resident-id-format", "17 digits"),
        ("11010519491231002Y", "resident-id-format", "17 digits"),
        ("１１０１０５１９４９１２３１００２Ｘ", "resident-id-format", "17 digits"),  # full-width
        ("110105194912310021", "resident-id-check-digit", "check digit is 1, expected X"),
        ("11010519491231002Ｘ", "resident-id-format", "17 digits"),
        (resident("99010519491231002"), "resident-id-region", "unknown province code 99"),
        (resident("10010519491231002"), "resident-id-region", "unknown province code 10"),
        (resident("00000019491231002"), "resident-id-region", "unknown province code 00"),
        (resident("72000019491231002"), "resident-id-region", "unknown province code 72"),
        (resident("11010519491331002"), "resident-id-birth-date", "19491331 is not a date"),
        (resident("11010519490001002"), "resident-id-birth-date", "19490001 is not a date"),
        (resident("11010519490230002"), "resident-id-birth-date", "19490230 is not a date"),
        (resident("11010520230229002"), "resident-id-birth-date", "20230229 is not a date"),
        (resident("11010519000229002"), "resident-id-birth-date", "19000229 is not a date"),
        (resident("11010500000101002"), "resident-id-birth-date", "00000101 is not a date"),
        (resident("11010520261122002"), "resident-id-birth-date", "2026-11-22 is after 2026-11-21"),
        (resident("11010530000101002"), "resident-id-birth-date", "after"),
        (resident("11010518991231002"), "resident-id-birth-date", "before 1900-01-01"),
        ("440524188001010014", "resident-id-birth-date", "before 1900-01-01"),  # GB 11643's own example
    ],
)
def test_invalid_resident_ids(text: str, reason: str, message: str) -> None:
    error = expect_invalid(reason, parse_resident_id, text, today=TODAY)
    assert message in error.message


def test_resident_error_messages_do_not_repeat_the_number() -> None:
    for text in ["110105194912310021", resident("99010519491231002"), resident("11010519491331002")]:
        with pytest.raises(InvalidIdentifier) as info:
            parse_resident_id(text, today=TODAY)
        assert text not in info.value.message


def test_resident_birth_date_bound_is_the_argument() -> None:
    number = resident("11010520261122002")
    assert parse_resident_id(number, today=date(2026, 11, 22)).birth_date == date(2026, 11, 22)


def test_resident_id_check_char_matches_reference() -> None:
    assert resident_id_check_char("11010519491231002") == "X"
    assert resident_id_check_char("44052418800101001") == "4"
    expect_invalid("resident-id-format", resident_id_check_char, "1101051949123100")
    expect_invalid("resident-id-format", resident_id_check_char, "1101051949123100A")


# --- unified social credit codes -----------------------------------------------------------------

# The GB 32100 example and codes published on business licences and in filings (the second group
# as quoted by python-stdnum's test suite); every one also satisfies the GB 11714 check of its
# embedded organization code, which is why parse_credit_code enforces it.
PUBLISHED_CODES = [
    "91350100M000100Y43",  # CREDIT-RULES.md example
    "91440300708461136T",  # Shenzhen Tencent Computer Systems Co., Ltd.
    "914403001922038216",  # Huawei Technologies Co., Ltd. (all digits)
    "91110108551385082Q",  # Xiaomi Inc. (Beijing)
    "91110000802100433B",  # Beijing Baidu Netcom Science and Technology Co., Ltd.
    "91330100716105852F",  # Alibaba (China) Co., Ltd.
    "91110000600037341L",
    "91110000710926094P",
    "121200004013590816",  # authority 1 (institution), all digits
    "91152201078371135X",  # all digits, check character X
    "9144030071526726XG",  # organization code check X
    "91340600MA2PBM9HXD",  # post-2015 "MA" organization code
    "91310115MA1K3BTP2B",
    "91620105L015101280",
    "92340602MA2PBMEM24",  # entity type 2: individual business
]


@pytest.mark.parametrize("code", PUBLISHED_CODES)
def test_published_credit_codes(code: str) -> None:
    parsed = parse_credit_code(code)
    assert parsed.code == code
    assert parsed.kind is SubjectKind.ORGANIZATION
    assert parsed.registration_authority + parsed.entity_type + parsed.region_code == code[:8]
    assert parsed.organization_code == code[8:17]
    assert ref_uscc_check(code[:17]) == credit_code_check_char(code[:17]) == code[17]
    assert ref_org_check(code[8:16]) == organization_code_check_char(code[8:16]) == code[16]


def test_credit_code_fields() -> None:
    assert parse_credit_code(" 91350100m000100y43 ") == CreditCode(
        code="91350100M000100Y43",
        registration_authority="9",
        entity_type="1",
        region_code="350100",
        organization_code="M000100Y4",
    )


@pytest.mark.parametrize(
    "code",
    [
        uscc("91100000", "10001043"),  # national-level registration, region 100000
        uscc("Y1110000", "MA00AAAA"),  # authority Y (other), letters in the organization code
        uscc("A1110000", "12345678"),
        uscc("N2820000", "00000000"),  # Macao region
        uscc("9Y650100", "ABCDEFGH"),  # entity type only has to be in the alphabet
    ],
)
def test_constructed_valid_credit_codes(code: str) -> None:
    assert parse_credit_code(code).code == code


@pytest.mark.parametrize(
    ("text", "reason", "message"),
    [
        ("", "credit-code-format", "0 characters"),
        ("91350100M000100Y4", "credit-code-format", "17 characters"),
        ("91350100M000100Y433", "credit-code-format", "19 characters"),
        ("91350100M000100I43", "credit-code-format", "'I'"),
        ("91350100O000100Y43", "credit-code-format", "'O'"),
        ("9135010SVZ00100Y43", "credit-code-format", "'SVZ'"),
        ("91350100M000100Y4-", "credit-code-format", "'-'"),
        ("91350100M000100Y44", "credit-code-check-digit", "check character is 4, expected 3"),
        ("91350100M000100Y34", "credit-code-check-digit", "expected"),
        ("914403001922038217", "credit-code-check-digit", "is 7, expected 6"),
        (uscc("H1350100", "12345678"), "credit-code-authority", "unknown registration authority H"),
        (uscc("01350100", "12345678"), "credit-code-authority", "authority 0"),
        (uscc("91A50100", "12345678"), "credit-code-region", "6 digits"),
        (uscc("9135010A", "12345678"), "credit-code-region", "6 digits"),
        (uscc("91990100", "12345678"), "credit-code-region", "unknown province code 99"),
        (uscc("91830000", "12345678"), "credit-code-region", "unknown province code 83"),
        (uscc("91000000", "12345678"), "credit-code-region", "unknown province code 00"),
        (uscc("91100001", "12345678"), "credit-code-region", "unknown province code 10"),
    ],
)
def test_invalid_credit_codes(text: str, reason: str, message: str) -> None:
    error = expect_invalid(reason, parse_credit_code, text)
    assert message in error.message


def test_organization_code_check_is_enforced() -> None:
    body = "91350100" + "M000100Y" + "5"  # organization code check should be 4
    code = body + ref_uscc_check(body)
    error = expect_invalid("credit-code-organization-code", parse_credit_code, code)
    assert "is 5, expected 4" in error.message


def test_organization_code_check_char() -> None:
    # GB 11714 letters take the values A=10 ... Z=35, including those GB 32100 excludes.
    assert organization_code_check_char("M000100Y") == "4"
    assert organization_code_check_char("IOSVZ000") == ref_org_check("IOSVZ000")
    results = {organization_code_check_char(f"{i:08d}") for i in range(200)}
    assert {"0", "X"} <= results
    expect_invalid("credit-code-format", organization_code_check_char, "M000100")
    expect_invalid("credit-code-format", organization_code_check_char, "m000100y")
    expect_invalid("credit-code-format", credit_code_check_char, "91350100M000100I4")


# --- dispatch ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected_type"),
    [
        ("11010519491231002X", ResidentId),
        ("11010519491231002x", ResidentId),
        ("91350100M000100Y43", CreditCode),
        ("91350100m000100y43", CreditCode),
        ("914403001922038216", CreditCode),  # all digits: not a resident ID (province 91)
        ("121200004013590816", CreditCode),  # all digits, province 12, but birth year 0040
        ("91152201078371135X", CreditCode),  # 17 digits + X, yet a credit code
    ],
)
def test_parse_identifier_dispatch(text: str, expected_type: type) -> None:
    parsed = parse_identifier(text, today=TODAY)
    assert isinstance(parsed, expected_type)
    assert parsed.kind is (SubjectKind.PERSON if expected_type is ResidentId else SubjectKind.ORGANIZATION)


@pytest.mark.parametrize(
    "text", ["", "123", "11010519491231002", "91350100M000100Y431", "1101051949123100 2X"]
)
def test_parse_identifier_wrong_length(text: str) -> None:
    error = expect_invalid("identifier-format", parse_identifier, text, today=TODAY)
    assert error.message == "not an 18-character resident ID or unified social credit code"


@pytest.mark.parametrize("text", ["514306200504025186", "511542199808167333", "123336196602090534"])
def test_parse_identifier_ambiguous(text: str) -> None:
    # Each is both a valid resident ID and a valid credit code (about 1 resident ID in 1000 is).
    assert parse_resident_id(text, today=TODAY).number == text
    assert parse_credit_code(text).code == text
    expect_invalid("identifier-ambiguous", parse_identifier, text, today=TODAY)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("110105194912310021", "resident-id-check-digit"),  # reads as a birth date 1949-12-31
        (resident("11010519491331002"), "resident-id-birth-date"),
        ("914403001922038217", "credit-code-check-digit"),  # no birth-date shape
        ("91350100M000100Y44", "credit-code-check-digit"),  # has letters: only a credit code
        ("1101051949123100AX", "credit-code-check-digit"),
        ("11010519491231002I", "credit-code-format"),
    ],
)
def test_parse_identifier_reports_the_likelier_reading(text: str, reason: str) -> None:
    expect_invalid(reason, parse_identifier, text, today=TODAY)


# --- properties ----------------------------------------------------------------------------------


@st.composite
def resident_ids(draw: st.DrawFn) -> tuple[str, date]:
    province = draw(st.sampled_from(PROVINCES + [83]))
    rest = draw(st.text(alphabet="0123456789", min_size=4, max_size=4))
    birth = draw(st.dates(min_value=date(1900, 1, 1), max_value=TODAY))
    sequence = draw(st.text(alphabet="0123456789", min_size=3, max_size=3))
    return resident(f"{province}{rest}{birth:%Y%m%d}{sequence}"), birth


@st.composite
def credit_codes(draw: st.DrawFn) -> str:
    authority = draw(st.sampled_from(AUTHORITIES))
    entity_type = draw(st.sampled_from(ALPHABET))
    region = draw(
        st.just("100000")
        | st.builds(
            lambda p, r: f"{p}{r}",
            st.sampled_from(PROVINCES),
            st.text(alphabet="0123456789", min_size=4, max_size=4),
        )
    )
    org8 = draw(st.text(alphabet=ALPHABET, min_size=8, max_size=8))
    return uscc(authority + entity_type + region, org8)


@given(resident_ids())
def test_generated_resident_ids_parse(case: tuple[str, date]) -> None:
    number, birth = case
    rid = parse_resident_id(number, today=TODAY)
    assert rid.number == number
    assert rid.birth_date == birth
    assert rid.sex == ("male" if int(number[16]) % 2 else "female")
    assert resident_id_check_char(number[:17]) == number[17]
    assert parse_resident_id(number.lower(), today=TODAY) == rid


@given(resident_ids(), st.integers(0, 17), st.sampled_from("0123456789XAZ "))
def test_any_single_change_breaks_a_resident_id(case: tuple[str, date], position: int, char: str) -> None:
    number, _ = case
    if number[position] == char:
        char = "5" if char != "5" else "6"
    changed = number[:position] + char + number[position + 1 :]
    with pytest.raises(InvalidIdentifier):
        parse_resident_id(changed, today=TODAY)


@given(credit_codes())
def test_generated_credit_codes_parse(code: str) -> None:
    parsed = parse_credit_code(code)
    assert parsed.code == code
    assert credit_code_check_char(code[:17]) == code[17]
    assert parse_credit_code(code.lower()) == parsed


@given(credit_codes(), st.integers(0, 17), st.sampled_from(ALPHABET + "IOSVZ-"))
def test_any_single_change_breaks_a_credit_code(code: str, position: int, char: str) -> None:
    if code[position] == char:
        char = "5" if char != "5" else "6"
    changed = code[:position] + char + code[position + 1 :]
    with pytest.raises(InvalidIdentifier):
        parse_credit_code(changed)


@given(credit_codes())
def test_credit_codes_with_a_letter_always_dispatch_as_credit_codes(code: str) -> None:
    if any(c.isalpha() for c in code[:17]):
        assert parse_identifier(code, today=TODAY) == parse_credit_code(code)
