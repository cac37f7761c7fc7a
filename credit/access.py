"""Access policy: the catalogue of lawful purposes for reading credit data, and the record windows.

Every read of a subject's credit data names a purpose from the catalogue (a code, optionally with a
short note). The catalogue says which kinds of reader may claim each purpose; anything else is
refused with the codes the reader may use. Reads are recorded as ``access`` ledger records, one per
reader, role, subject, purpose and kind of data per window; repeat reads in the window count up
the access row the subject sees instead of growing the log (:mod:`credit.access_log`).

The shipped policy is ``credit/access.toml``; a deployment replaces it with
``<data dir>/credit-access.toml`` (:func:`credit.setup.open_credit`).
"""

from __future__ import annotations

import tomllib
import unicodedata
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from credit.errors import CreditError, InvalidText, UnknownPurpose

PURPOSE_CODE = r"^[a-z][a-z0-9_]{0,63}$"
MAX_NOTE = 200
SUBJECT_ROLE = "subject"
SELF_QUERY = "self_query"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Purpose(_Model):
    """A lawful purpose: what it is, who may claim it, and on what basis."""

    label: Annotated[str, Field(min_length=1, max_length=200)]
    roles: tuple[Annotated[str, Field(pattern=r"^[a-z]{1,32}$")], ...] = Field(min_length=1)
    basis: Annotated[str, Field(max_length=200)] = ""


class Windows(_Model):
    """How long repeat reads add to one access record (0: every read is its own record)."""

    self_hours: Annotated[float, Field(ge=0, le=24 * 31)] = 24
    other_hours: Annotated[float, Field(ge=0, le=24 * 31)] = 1


class AccessPolicy(_Model):
    """The whole policy (see the module docstring)."""

    version: Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]{0,39}$")]
    windows: Windows = Windows()
    purposes: dict[Annotated[str, Field(pattern=PURPOSE_CODE)], Purpose] = Field(min_length=1)

    def allowed(self, role: str) -> list[str]:
        """The purpose codes a reader with ``role`` may claim (an admin any but the subject's)."""
        return sorted(
            code
            for code, p in self.purposes.items()
            if role in p.roles or (role == "admin" and SUBJECT_ROLE not in p.roles)
        )

    def purpose(self, code: str, role: str) -> Purpose:
        """The catalogue entry ``code`` if ``role`` may claim it, else :class:`UnknownPurpose`."""
        allowed = self.allowed(role)
        if code not in allowed:
            what = (
                "is not in the catalogue of lawful purposes"
                if code not in self.purposes
                else (f"is not a purpose a {role} reader may claim")
            )
            raise UnknownPurpose(
                f"purpose {code[:64]!r} {what}; use one of: {', '.join(allowed) or '(none)'}"
            )
        return self.purposes[code]

    def window_s(self, role: str) -> int:
        """The record window for a reader with ``role``, in seconds."""
        hours = self.windows.self_hours if role == SUBJECT_ROLE else self.windows.other_hours
        return int(hours * 3600)


def check_text(value: str, *, name: str, max_length: int) -> str:
    """Bounded human text: not blank, at most ``max_length`` characters, no control characters and
    no invisible format characters (zero-width spaces and the like: Unicode category Cc, Cf, Cs, Co,
    Cn), so what a subject is shown is what was written. Surrounding whitespace is stripped."""
    text = value.strip()
    if not text:
        raise InvalidText(f"{name} is blank", reason="invalid-text")
    if len(text) > max_length:
        raise InvalidText(f"{name} is longer than {max_length} characters", reason="invalid-text")
    for char in text:
        if unicodedata.category(char).startswith("C"):
            raise InvalidText(
                f"{name} holds a control or invisible character (U+{ord(char):04X})", reason="invalid-text"
            )
    return text


def policy_from_text(text: str, *, where: str = "access policy") -> AccessPolicy:
    """Parse and validate policy TOML; :class:`CreditError` names the first bad entry."""
    try:
        return AccessPolicy.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as e:
        raise CreditError(f"{where}: not valid TOML: {e}", reason="configuration") from e
    except ValidationError as e:
        first = e.errors()[0]
        location = ".".join(str(p) for p in first["loc"]) or "policy"
        raise CreditError(f"{where}: {location}: {first['msg']}", reason="configuration") from e


def load_access_policy(path: Path | None = None) -> AccessPolicy:
    """The policy at ``path``, or the shipped default."""
    if path is None:
        text = resources.files("credit").joinpath("access.toml").read_text(encoding="utf-8")
        return policy_from_text(text, where="credit/access.toml")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CreditError(f"cannot read access policy {path}: {e}", reason="configuration") from e
    return policy_from_text(text, where=str(path))
