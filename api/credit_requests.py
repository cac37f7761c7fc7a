"""Request models of the credit API (pydantic; every field appears in the OpenAPI document).

Requests are bounded and checked here before the credit service sees them: identifiers, keys and
ids by pattern, human text as bounded visible text (:func:`credit.access.check_text`). The
responses are :mod:`api.credit_responses`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from credit.access import MAX_NOTE, PURPOSE_CODE, check_text
from credit.errors import CreditError
from credit.models import ObjectionOutcome

HEX64 = r"^[0-9a-f]{64}$"
KEY = r"^[a-z][a-z0-9_]{0,63}$"  # rulebook keys: event types, scenarios, lists
EVENT_ID = r"^[0-9a-f]{40}$"
CASE_ID = r"^[0-9a-f]{32}$"
_RECORD_ID = r"^[0-9a-f]{46}$"
_IDENTIFIER = r"^[0-9A-Za-z]{15,18}$"  # 18-digit resident IDs (15 for old cards), 18-character codes


def _visible(max_length: int, *, blank: bool = True) -> AfterValidator:
    """Bounded human text (see :func:`credit.access.check_text`) as a pydantic check. With ``blank``
    a blank value passes through, for the service to refuse with its own reason (statement-required,
    source-ref, …)."""

    def check(value: str) -> str:
        if blank and not value.strip():
            return value
        try:
            check_text(value, name="text", max_length=max_length)
        except CreditError as e:
            raise ValueError(e.message.removeprefix("text ")) from e
        return value  # unchanged: a source_ref is an idempotency key

    return AfterValidator(check)


Name = Annotated[str, Field(min_length=1, max_length=64), _visible(64)]
Reference = Annotated[str, Field(max_length=200), _visible(200)]
Note = Annotated[str, Field(min_length=1, max_length=2000), _visible(2000)]
Person = Annotated[str, Field(min_length=1, max_length=128), _visible(128, blank=False)]
Statement = Annotated[str, Field(max_length=4000), _visible(4000)]
Commitment = Annotated[str, Field(max_length=8000), _visible(8000)]
PurposeCode = Annotated[str, Field(pattern=PURPOSE_CODE, description="a code of the purpose catalogue")]
PurposeNote = Annotated[str, Field(min_length=1, max_length=MAX_NOTE), _visible(MAX_NOTE, blank=False)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _EventFields(BaseModel):
    # Other fields are kept so that the service can refuse each with its reason (a field 征信业管理条例
    # art. 14 forbids, one needing consent, an unknown one).
    model_config = ConfigDict(extra="allow", frozen=True)

    type: Annotated[str, Field(pattern=KEY, description="an event type of the rulebook")]
    subject_kind: Literal["person", "organization"] | None = None
    # Dates are bounded here and parsed by the service, which names the problem (invalid-date).
    occurred_on: Annotated[str, Field(min_length=1, max_length=10, description="YYYY-MM-DD")]
    ended_on: Annotated[str, Field(min_length=1, max_length=10)] | None = None
    quantity: Annotated[int, Field(strict=True, ge=1, le=1_000_000)] = 1
    refers_to: Reference | None = Field(default=None, description="the source_ref of the listing it ends")
    evidence_record_id: Annotated[str, Field(pattern=_RECORD_ID)] | None = None

    def fields(self) -> dict[str, Any]:
        """The fields the client sent (defaults are the service's to apply)."""
        return self.model_dump(exclude_unset=True)


class EventIn(_EventFields):
    """One credit event from a source."""

    subject: Annotated[
        str, Field(pattern=_IDENTIFIER, description="resident ID or unified social credit code")
    ]
    name: Name | None = None
    source_ref: Reference = Field(description="the source document's reference (idempotency key)")


class ReplacementIn(_EventFields):
    """The corrected event replacing a withdrawn one (its subject is the objection's)."""

    source_ref: Reference | None = None


class EventsIn(_In):
    """A batch of credit events from one source (all or none). Each event is an object with
    ``type``, ``subject`` (resident ID or unified social credit code), ``occurred_on``,
    ``source_ref`` and optionally ``name``, ``ended_on``, ``quantity``, ``refers_to``,
    ``evidence_record_id``; any other field is refused with the reason."""

    events: list[EventIn] = Field(min_length=1, max_length=5000)


class AnswerIn(_In):
    """A source's answer to an objection."""

    outcome: ObjectionOutcome
    note: Note | None = None
    replacement: ReplacementIn | None = Field(default=None, description="a corrected event (correct only)")
    confirmed_by: Person | None = Field(default=None, description="the person confirming")


class DecisionIn(_In):
    """A decision on a repair application or a list proposal."""

    approve: bool
    decided_by: Person = Field(description="the person deciding")
    note: Note | None = None


class MeasuresIn(_In):
    """Which measures apply to an applicant in a scenario (the "一键搞定" check)."""

    subject: Annotated[
        str, Field(pattern=_IDENTIFIER, description="resident ID or unified social credit code")
    ]
    scenario: Annotated[str, Field(pattern=KEY)]
    purpose: PurposeCode
    purpose_note: PurposeNote | None = Field(
        default=None, description="shown to the subject with the purpose"
    )


class ObjectionIn(_In):
    """An objection against one of the subject's events."""

    event_id: Annotated[str, Field(pattern=EVENT_ID)]
    statement: Statement


class RepairIn(_In):
    """A repair application with the signed credit commitment (信用承诺书)."""

    event_id: Annotated[str, Field(pattern=EVENT_ID)]
    commitment: Commitment


class ReplayIn(_In):
    """Which subject to replay, and why."""

    subject_ref: str = Field(pattern=HEX64)
    purpose: PurposeCode
    purpose_note: PurposeNote | None = None
