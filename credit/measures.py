"""Joint reward and punishment (联合奖惩): which measures apply to a subject in a scenario.

Pure: an :class:`~credit.engine.Assessment` and the rulebook's catalogue in, the applicable
measures out, each with its legal basis and the facts that triggered it. This is the "一键搞定"
check an approval system makes before approving.
"""

from __future__ import annotations

from dataclasses import dataclass

from credit.engine import Assessment, ContributionState, add_months
from credit.errors import NotFoundError
from credit.identifiers import SubjectKind
from credit.rulebook import Condition, Rulebook


@dataclass(frozen=True)
class AppliedMeasure:
    """One measure that applies, why, and on what legal basis."""

    id: str
    kind: str  # reward | punishment
    effect: str
    legal_basis: str
    facts: tuple[str, ...]  # human-readable triggering facts, each naming its event or list


def _facts(
    when: Condition, assessment: Assessment, rulebook: Rulebook, subject: SubjectKind
) -> list[str] | None:
    """The facts satisfying every test of ``when``, or None when one fails."""
    facts: list[str] = []
    if when.subject is not None:
        if when.subject is not subject:
            return None
    if when.min_level is not None:
        if assessment.score < rulebook.level_min(when.min_level):
            return None
        facts.append(f"level {assessment.level} (score {assessment.score}) is {when.min_level} or above")
    if when.red_list is not None:
        if assessment.lists.red_member != when.red_list:
            return None
        facts.append("on the red list" if when.red_list else "not on the red list")
    if when.black_list is not None:
        hits = [b for b in assessment.lists.black if when.black_list in ("any", b.list)]
        if not hits:
            return None
        for b in hits:
            name = rulebook.black_lists[b.list].name
            facts.append(f"on {name} since {b.entered_on} until {b.exit_due} (event {b.event_id})")
    if when.clean_years is not None:
        negatives = [
            c.occurred_on
            for c in assessment.contributions
            if c.points < 0 and c.state != ContributionState.WITHDRAWN
        ]
        # The engine's red-list rule: clean once the newest negative event is clean_years old.
        if any(add_months(day, 12 * when.clean_years) > assessment.as_of for day in negatives):
            return None
        latest = max(negatives, default=None)
        facts.append(f"no negative credit event for {when.clean_years} years (last: {latest or 'none'})")
    if when.active_event is not None:
        active = [
            c
            for c in assessment.contributions
            if c.type == when.active_event and ContributionState(c.state).counts
        ]
        if not active:
            return None
        label = rulebook.event_types[when.active_event].label
        facts.extend(f"{label} on {c.occurred_on} (event {c.event_id})" for c in active)
    return facts


def measures(
    assessment: Assessment, scenario: str, rulebook: Rulebook, *, subject: SubjectKind
) -> list[AppliedMeasure]:
    """The reward and punishment measures that apply to the assessed subject in ``scenario``.

    Punishments are listed first. An unknown scenario is a :class:`NotFoundError`.
    """
    if scenario not in rulebook.scenarios:
        known = ", ".join(sorted(rulebook.scenarios))
        raise NotFoundError(f"unknown scenario {scenario!r}; known: {known}", reason="unknown-scenario")
    applied = []
    for key, measure in rulebook.measures.items():
        if measure.scenario != scenario:
            continue
        facts = _facts(measure.when, assessment, rulebook, subject)
        if facts is not None:
            applied.append(
                AppliedMeasure(key, measure.kind, measure.effect, measure.legal_basis, tuple(facts))
            )
    return sorted(applied, key=lambda m: (m.kind != "punishment", m.id))
