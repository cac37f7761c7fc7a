"""Parsing and validation of the two identifiers a credit subject can have.

* **Resident ID** (公民身份号码, GB 11643-1999): 6-digit region code (GB/T 2260), 8-digit birth
  date ``YYYYMMDD``, 3-digit sequence (odd for men, even for women) and a check character
  ``"10X98765432"[Σ aᵢ·wᵢ mod 11]`` with weights ``wᵢ = 2^(17-i) mod 11``
  (7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2).
* **Unified social credit code** (统一社会信用代码, GB 32100-2015): registration authority (1
  char), entity type (1), region code (6 digits, GB/T 2260), organization code (9 chars,
  GB 11714-1997, itself ending in a check character) and a check character over the 31-character
  alphabet ``0123456789ABCDEFGHJKLMNPQRTUWXY`` (no I, O, S, V, Z) with weights ``3^(i-1) mod 31``.

Every parser strips surrounding whitespace and upper-cases its input; a failure is an
:class:`~credit.errors.InvalidIdentifier` whose ``reason`` names the rule that failed
(``resident-id-format``, ``resident-id-check-digit``, ``resident-id-region``,
``resident-id-birth-date``, ``credit-code-format``, ``credit-code-check-digit``,
``credit-code-authority``, ``credit-code-region``, ``credit-code-organization-code``,
``identifier-format``, ``identifier-ambiguous``). Messages never repeat the whole identifier, so
they can be logged.

Everything here is pure: the date that bounds a birth date is an argument, never the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Final

from credit.errors import InvalidIdentifier

__all__ = [
    "CREDIT_CODE_ALPHABET",
    "CreditCode",
    "ResidentId",
    "Sex",
    "SubjectKind",
    "credit_code_check_char",
    "organization_code_check_char",
    "parse_credit_code",
    "parse_identifier",
    "parse_resident_id",
    "resident_id_check_char",
]

IDENTIFIER_LENGTH: Final = 18
"""Both identifiers are 18 characters long."""

# GB/T 2260 province-level divisions: 11-15 North, 21-23 North-East, 31-37 East, 41-46 Central and
# South, 50-54 South-West, 61-65 North-West, 71 Taiwan, 81 Hong Kong, 82 Macao.
_PROVINCE_CODES: Final = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82}
)
# Residence permits for Taiwan residents (港澳台居民居住证, 2018) carry GB 11643 numbers with the
# region code 830000 (Hong Kong and Macao ones use 810000 and 820000), although 83 is not a GB/T
# 2260 province code.
_RESIDENT_PROVINCE_CODES: Final = _PROVINCE_CODES | {83}
_NATIONAL_REGION: Final = "100000"
"""Region code of legal persons registered by a national (central) authority."""

_EARLIEST_BIRTH: Final = date(1900, 1, 1)
_RESIDENT_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RESIDENT_CHECK: Final = "10X98765432"
_DIGITS: Final = frozenset("0123456789")

CREDIT_CODE_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""GB 32100-2015 code characters; a character's value is its index (31 characters)."""
_CREDIT_VALUES: Final = {c: i for i, c in enumerate(CREDIT_CODE_ALPHABET)}
_CREDIT_CHARS: Final = frozenset(CREDIT_CODE_ALPHABET)
_CREDIT_WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
# GB 32100-2015 table 1 lists 1-9, A, N and Y; B-G are accepted loosely for other departments.
_AUTHORITY_CHARS: Final = frozenset("123456789ABCDEFGNY")
_ORG_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_BODY_CHARS: Final = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class SubjectKind(StrEnum):
    """The kind of credit subject an identifier names."""

    PERSON = "person"
    ORGANIZATION = "organization"


class Sex(StrEnum):
    """Sex recorded in a resident ID (parity of the 17th digit: odd is male)."""

    MALE = "male"
    FEMALE = "female"


@dataclass(frozen=True, slots=True)
class ResidentId:
    """A resident ID that passed every GB 11643-1999 check."""

    number: str
    """Canonical form: 18 characters, check character ``X`` upper-case."""
    region_code: str
    """The 6-digit GB/T 2260 code of the place of first registration."""
    birth_date: date
    sex: Sex

    @property
    def kind(self) -> SubjectKind:
        """Always :attr:`SubjectKind.PERSON`."""
        return SubjectKind.PERSON


@dataclass(frozen=True, slots=True)
class CreditCode:
    """A unified social credit code that passed every GB 32100-2015 check."""

    code: str
    """Canonical form: 18 upper-case characters."""
    registration_authority: str
    """Character 1: the registering department (``9`` market regulation, ``5`` civil affairs, …)."""
    entity_type: str
    """Character 2: the kind of entity within that department (``1`` enterprise, ``2`` …)."""
    region_code: str
    """Characters 3-8: GB/T 2260 code of the registering office (``100000`` for national ones)."""
    organization_code: str
    """Characters 9-17: the GB 11714 organization code, including its own check character."""

    @property
    def kind(self) -> SubjectKind:
        """Always :attr:`SubjectKind.ORGANIZATION`."""
        return SubjectKind.ORGANIZATION


# ---------------------------------------------------------------------------------------------
# Check characters
# ---------------------------------------------------------------------------------------------


def resident_id_check_char(body: str) -> str:
    """The GB 11643-1999 check character (``0``-``9`` or ``X``) for a 17-digit body."""
    if len(body) != IDENTIFIER_LENGTH - 1 or not set(body) <= _DIGITS:
        raise InvalidIdentifier("resident ID body must be 17 digits", reason="resident-id-format")
    total = sum(int(c) * w for c, w in zip(body, _RESIDENT_WEIGHTS, strict=True))
    return _RESIDENT_CHECK[total % 11]


def credit_code_check_char(body: str) -> str:
    """The GB 32100-2015 check character for a 17-character body over :data:`CREDIT_CODE_ALPHABET`."""
    if len(body) != IDENTIFIER_LENGTH - 1 or not set(body) <= _CREDIT_CHARS:
        raise InvalidIdentifier(
            "credit code body must be 17 characters from the GB 32100 alphabet", reason="credit-code-format"
        )
    total = sum(_CREDIT_VALUES[c] * w for c, w in zip(body, _CREDIT_WEIGHTS, strict=True))
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def organization_code_check_char(body: str) -> str:
    """The GB 11714-1997 check character (``0``-``9`` or ``X``) for an 8-character organization code body.

    Characters are ``0``-``9`` (values 0-9) and ``A``-``Z`` (values 10-35); the check is
    ``11 − (Σ cᵢ·wᵢ mod 11)`` with weights 3 7 9 10 5 8 4 2, written ``X`` for 10 and ``0`` for 11.
    """
    if len(body) != 8 or not set(body) <= _ORG_BODY_CHARS:
        raise InvalidIdentifier(
            "organization code body must be 8 characters from 0-9 and A-Z", reason="credit-code-format"
        )
    total = sum(int(c, 36) * w for c, w in zip(body, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


# ---------------------------------------------------------------------------------------------
# Parsers
# ---------------------------------------------------------------------------------------------


def _canonical(text: str) -> str:
    if not isinstance(text, str):
        raise InvalidIdentifier("identifier must be a string", reason="identifier-format")
    return text.strip().upper()


def parse_resident_id(text: str, *, today: date) -> ResidentId:
    """Parse and validate a GB 11643-1999 resident ID.

    Checks, in order: 18 characters, 17 digits and a digit or ``X`` (``resident-id-format``); the
    check character (``resident-id-check-digit``); a known province in the region code
    (``resident-id-region``); a real birth date between 1900-01-01 and ``today``
    (``resident-id-birth-date``). Lower-case ``x`` and surrounding whitespace are accepted.
    """
    number = _canonical(text)
    if len(number) != IDENTIFIER_LENGTH:
        raise InvalidIdentifier(
            f"resident ID has {len(number)} characters, expected 18", reason="resident-id-format"
        )
    body, check = number[:17], number[17]
    if not set(body) <= _DIGITS or check not in _RESIDENT_CHECK:
        raise InvalidIdentifier(
            "resident ID must be 17 digits followed by a digit or X", reason="resident-id-format"
        )
    expected = resident_id_check_char(body)
    if check != expected:
        raise InvalidIdentifier(
            f"resident ID check digit is {check}, expected {expected}", reason="resident-id-check-digit"
        )
    province = int(number[:2])
    if province not in _RESIDENT_PROVINCE_CODES:
        raise InvalidIdentifier(f"unknown province code {number[:2]}", reason="resident-id-region")
    raw_birth = number[6:14]
    try:
        birth = date(int(raw_birth[:4]), int(raw_birth[4:6]), int(raw_birth[6:]))
    except ValueError:
        raise InvalidIdentifier(
            f"resident ID birth date {raw_birth} is not a date", reason="resident-id-birth-date"
        ) from None
    if birth > today:
        raise InvalidIdentifier(
            f"resident ID birth date {birth.isoformat()} is after {today.isoformat()}",
            reason="resident-id-birth-date",
        )
    if birth < _EARLIEST_BIRTH:
        raise InvalidIdentifier(
            f"resident ID birth date {birth.isoformat()} is before {_EARLIEST_BIRTH.isoformat()}",
            reason="resident-id-birth-date",
        )
    sex = Sex.MALE if int(number[16]) % 2 == 1 else Sex.FEMALE
    return ResidentId(number=number, region_code=number[:6], birth_date=birth, sex=sex)


def parse_credit_code(text: str) -> CreditCode:
    """Parse and validate a GB 32100-2015 unified social credit code.

    Checks, in order: 18 characters from the GB 32100 alphabet (``credit-code-format``); the
    check character (``credit-code-check-digit``); a known registration authority character
    (``credit-code-authority``, checked loosely: the entity type only has to be in the alphabet);
    a 6-digit region code with a known province, or ``100000`` (``credit-code-region``); the
    GB 11714-1997 check character of the embedded organization code
    (``credit-code-organization-code``). Lower case and surrounding whitespace are accepted.
    """
    code = _canonical(text)
    if len(code) != IDENTIFIER_LENGTH:
        raise InvalidIdentifier(
            f"credit code has {len(code)} characters, expected 18", reason="credit-code-format"
        )
    bad = sorted(set(code) - _CREDIT_CHARS)
    if bad:
        raise InvalidIdentifier(
            f"credit code contains {''.join(bad)!r}, not in the GB 32100 alphabet (no I, O, S, V, Z)",
            reason="credit-code-format",
        )
    expected = credit_code_check_char(code[:17])
    if code[17] != expected:
        raise InvalidIdentifier(
            f"credit code check character is {code[17]}, expected {expected}",
            reason="credit-code-check-digit",
        )
    authority, entity_type, region, organization = code[0], code[1], code[2:8], code[8:17]
    if authority not in _AUTHORITY_CHARS:
        raise InvalidIdentifier(f"unknown registration authority {authority}", reason="credit-code-authority")
    if not set(region) <= _DIGITS:
        raise InvalidIdentifier("credit code region code must be 6 digits", reason="credit-code-region")
    if region != _NATIONAL_REGION and int(region[:2]) not in _PROVINCE_CODES:
        raise InvalidIdentifier(f"unknown province code {region[:2]}", reason="credit-code-region")
    org_expected = organization_code_check_char(organization[:8])
    if organization[8] != org_expected:
        raise InvalidIdentifier(
            f"organization code check character is {organization[8]}, expected {org_expected}",
            reason="credit-code-organization-code",
        )
    return CreditCode(
        code=code,
        registration_authority=authority,
        entity_type=entity_type,
        region_code=region,
        organization_code=organization,
    )


def _looks_like_resident_id(number: str) -> bool:
    """Whether an all-digit 18-character string reads more like a resident ID than a credit code."""
    return int(number[:2]) in _RESIDENT_PROVINCE_CODES and number[6:8] in {"19", "20"}


def parse_identifier(text: str, *, today: date) -> ResidentId | CreditCode:
    """Parse a resident ID or a unified social credit code, telling them apart by shape.

    Anything containing a letter other than a final ``X`` is a credit code. An all-digit string
    (optionally ending in ``X``) may be either, since many credit codes are all digits: it is
    parsed both ways and the interpretation that validates is returned. If both validate (rare,
    but possible: about one resident ID in a thousand is also a well-formed credit code), the
    result is :class:`InvalidIdentifier` with reason ``identifier-ambiguous``, and the caller
    must use :func:`parse_resident_id` or :func:`parse_credit_code`, knowing the subject's kind.
    If neither validates, the error of the likelier reading is raised: the resident ID's when
    digits 1-2 are a province code and digits 7-8 a century (19 or 20), else the credit code's.
    Callers that know the kind should call the specific parser directly.
    """
    number = _canonical(text)
    if len(number) != IDENTIFIER_LENGTH:
        raise InvalidIdentifier(
            "not an 18-character resident ID or unified social credit code", reason="identifier-format"
        )
    if not (set(number[:17]) <= _DIGITS and number[17] in _RESIDENT_CHECK):
        return parse_credit_code(number)
    resident: ResidentId | None = None
    credit: CreditCode | None = None
    resident_error: InvalidIdentifier | None = None
    credit_error: InvalidIdentifier | None = None
    try:
        resident = parse_resident_id(number, today=today)
    except InvalidIdentifier as e:
        resident_error = e
    try:
        credit = parse_credit_code(number)
    except InvalidIdentifier as e:
        credit_error = e
    if resident is not None and credit is not None:
        raise InvalidIdentifier(
            "identifier is valid both as a resident ID and as a unified social credit code; "
            "parse it as the kind the subject is known to be",
            reason="identifier-ambiguous",
        )
    if resident is not None:
        return resident
    if credit is not None:
        return credit
    error = resident_error if _looks_like_resident_id(number) else credit_error
    if error is None:  # pragma: no cover - both parsers failed, so both errors are set
        raise InvalidIdentifier("not a resident ID or unified social credit code", reason="identifier-format")
    raise error
