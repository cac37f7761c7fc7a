"""The credit engine's error hierarchy.

Every failure the credit package reports is a :class:`CreditError`; ``api.problems`` maps each
class to an HTTP status and the CLI to a message and exit code. ``reason`` is a stable
machine-readable code.
"""

from __future__ import annotations

from trustledger.errors import TrustledgerError


class CreditError(TrustledgerError):
    """Root of all credit errors."""

    reason: str = "credit-error"


class InvalidIdentifier(CreditError):
    """A resident ID or unified social credit code that fails its standard's checks (HTTP 400)."""

    reason = "invalid-identifier"


class RulebookError(CreditError):
    """A rulebook file that does not validate; the message names the bad entry (HTTP 422)."""

    reason = "invalid-rulebook"


class InvalidEvent(CreditError):
    """A credit event the active rulebook cannot accept (HTTP 422)."""

    reason = "invalid-event"


class ForbiddenField(InvalidEvent):
    """A field that 征信业管理条例 art. 14 forbids collecting, or one needing consent (HTTP 422)."""

    reason = "forbidden-field"


class UnknownSubject(CreditError):
    """No such subject, or its personal data was erased (HTTP 404)."""

    reason = "unknown-subject"


class NoRulebookInForce(CreditError):
    """No rulebook has been put in force: the deployment is not set up (HTTP 503;
    ``trustledger init`` activates the shipped default)."""

    reason = "no-rulebook"


class InvalidDate(CreditError):
    """A date a question cannot be asked about, e.g. a score on a day still to come (HTTP 400)."""

    reason = "invalid-date"


class NotFoundError(CreditError):
    """No such event, objection, repair or rulebook version (HTTP 404)."""

    reason = "not-found"


class WorkflowError(CreditError):
    """A transition the workflow's current state does not allow (HTTP 409)."""

    reason = "workflow-state"


class CalendarError(CreditError):
    """A date outside what the working-day calendar knows (HTTP 500: a deployment problem)."""

    reason = "calendar-unavailable"


class IntegrityFailure(CreditError):
    """Stored credit rows do not match the ledger records they came from (HTTP 503).

    The database was edited behind the service's back (or a row was lost): what it holds cannot
    be served as the subject's history until an operator restores it (``trustledger credit replay
    --all`` and ``trustledger audit`` name each difference with its log index).
    """

    reason = "credit-integrity"


class UnknownPurpose(CreditError):
    """A purpose that is not in the catalogue, or not one this kind of reader may claim (HTTP 400)."""

    reason = "unknown-purpose"


class InvalidText(CreditError):
    """Free text that is blank, too long, or holds control or invisible characters (HTTP 400)."""

    reason = "invalid-text"


class Conflict(CreditError):
    """The request conflicts with stored credit data: a reused source reference, an already
    activated rulebook version, or data that kept changing concurrently (HTTP 409)."""

    reason = "conflict"


class StaleWrite(Conflict):
    """A subject's score or case changed between read and write; the writer re-reads and retries
    (surfaced as a :class:`Conflict` with reason ``busy`` once the retries run out)."""

    reason = "busy"


class SubjectStateError(CreditError):
    """A subject's incremental state that cannot be used as asked: written under another rulebook
    version, for a rulebook whose caps do not roll, asked about a date it cannot answer, or bytes
    that are not a state this code reads. The caller rebuilds the state from the subject's events
    (:func:`credit.subject_state.state_from_history`) or evaluates them directly."""

    reason = "subject-state"
