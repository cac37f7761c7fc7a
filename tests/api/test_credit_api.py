"""The credit engine end to end through the HTTP API, on SQLite and PostgreSQL.

Sources submit events with their API keys, people read their own score with an OpenID Connect
token from the local development identity provider (served over HTTP for the whole module),
approval systems ask for measures, officers confirm list changes, auditors replay. The credit
service runs on an injected clock (``clock[0]``) so that tests travel in time: objection
deadlines, repair periods, the yearly red-list review. Every flow ends with a clean replay.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from api.oidc import OidcConfig, OidcVerifier
from cli.main import main
from credit.access import Windows, load_access_policy
from credit.engine import add_months
from credit.errors import Conflict, InvalidEvent, UnknownSubject
from credit.identifiers import resident_id_check_char
from credit.models import CaseState, PersonalData
from credit.rulebook import default_rulebook, rulebook_from_data
from credit.service import CreditService, Source
from credit.setup import open_credit
from credit.workdays import WorkingCalendar
from devidp import LocalIdentityProvider, serve_in_thread
from ledger.core.crypto import HashAlgorithm, digest_function
from ledger.core.hashing import tree_hasher
from ledger.core.leaf import RecordKind, canonical_json
from ledger.core.merkle import root_from_inclusion_proof, verify_inclusion
from ledger.core.receipt import Receipt, verify_receipt
from ledger.keys import api_key_hash, new_api_key
from ledger.log import Ledger, SubjectFamily
from ledger.service import open_ledger
from ledger.settings import Settings

AUDIENCE = "trustledger-api"
PROBLEM = "application/problem+json"
START = date(2026, 3, 2)  # a Monday
MASTER_KEY = bytes(range(16))
SM3 = digest_function(HashAlgorithm.SM3)
CALENDAR = WorkingCalendar()

#: short name → (client name, stored role)
CLIENTS = {
    "court": ("city-court", "source:court"),
    "tax": ("tax-bureau", "source:tax"),
    "market": ("market-bureau", "source:market_regulation"),
    "honours": ("honours-office", "source:honours"),
    "finance": ("credit-bureau", "source:finance"),
    "utilities": ("water-company", "source:utilities"),
    "approval": ("approval-portal", "approval"),
    "officer": ("credit-officer", "officer"),
    "auditor": ("audit-office", "auditor"),
    "notarizer": ("notary-desk", "notarizer"),
    "admin": ("operator", "admin"),
}


def person(n: int, birth: str = "19800101") -> str:
    """A valid resident ID (Beijing Chaoyang) with sequence number ``n``."""
    body = f"110105{birth}{n:03d}"
    return body + resident_id_check_char(body)


P1, P2, P3, P4 = (person(n) for n in (11, 23, 35, 47))
ELDER = "11010519491231002X"  # the example of CREDIT-RULES.md
COMPANY = "91350100M000100Y43"
# Both a valid resident ID and a valid unified social credit code (about 1 in 1,000 are).
AMBIGUOUS = "13110219800101141X"


# --- fixtures -----------------------------------------------------------------------------------


@dataclass
class Idp:
    provider: LocalIdentityProvider
    verifier: OidcVerifier


@pytest.fixture(scope="module")
def idp() -> Iterator[Idp]:
    """The development identity provider over HTTP, and a verifier for its tokens."""
    provider = LocalIdentityProvider(algorithm="ES256")
    with serve_in_thread(provider) as url:
        yield Idp(provider, OidcVerifier(OidcConfig(issuer=url, audience=AUDIENCE)))


@dataclass
class Env:
    """The app over a fresh database, with one API key per kind of caller and a movable clock."""

    client: TestClient
    ledger: Ledger
    service: CreditService
    clock: list[date]
    keys: dict[str, str]
    idp: Idp

    @property
    def today(self) -> date:
        return self.clock[0]

    def travel(self, to: date) -> None:
        assert to >= self.clock[0], "time only moves forward"
        self.clock[0] = to

    def name(self, short: str) -> str:
        return CLIENTS[short][0]

    def auth(self, short: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[short]}"}

    def me(self, identifier: str) -> dict[str, str]:
        token = self.idp.provider.issue_token(identifier, audience=AUDIENCE)
        return {"Authorization": f"Bearer {token}"}

    def ref(self, identifier: str) -> bytes:
        return self.ledger.subject_ref(identifier, family=SubjectFamily.CREDIT)

    def ev(
        self, type_: str, subject: str, source_ref: str, occurred: date | None = None, **extra: Any
    ) -> dict[str, Any]:
        return {
            "type": type_,
            "subject": subject,
            "occurred_on": (occurred or self.today).isoformat(),
            "source_ref": source_ref,
            **extra,
        }

    def post_events(self, short: str, *events: dict[str, Any]) -> httpx.Response:
        response: httpx.Response = self.client.post(
            "/v1/credit/events", json={"events": list(events)}, headers=self.auth(short)
        )
        return response

    def submit(self, short: str, *events: dict[str, Any]) -> list[dict[str, Any]]:
        response = self.post_events(short, *events)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["count"] == len(body["data"])
        data: list[dict[str, Any]] = body["data"]
        return data

    def get_me(self, identifier: str, path: str = "") -> Any:
        response = self.client.get(f"/v1/credit/me{path}", headers=self.me(identifier))
        assert response.status_code == 200, response.text
        return response.json()

    def history(self, identifier: str) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.get_me(identifier, "/history")["data"]
        return data

    def event(self, identifier: str, event_id: str) -> dict[str, Any]:
        events = self.get_me(identifier, "/events")["data"]
        return next(e for e in events if e["id"] == event_id)

    def measures(
        self, subject: str, scenario: str, purpose: str = "administrative_approval", note: str | None = None
    ) -> dict[str, Any]:
        body = {"subject": subject, "scenario": scenario, "purpose": purpose}
        response = self.client.post(
            "/v1/credit/measures",
            json=body | ({"purpose_note": note} if note else {}),
            headers=self.auth("approval"),
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def counts(self) -> dict[str, int]:
        tables = ("record", "credit_event", "credit_subject", "credit_score", "credit_change", "credit_case")
        with self.ledger.store.engine.connect() as conn:
            return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}

    def replay(self, identifier: str) -> dict[str, Any]:
        response = self.client.post(
            "/v1/credit/replay",
            json={"subject_ref": self.ref(identifier).hex(), "purpose": "credit_audit"},
            headers=self.auth("auditor"),
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def assert_clean(self, *identifiers: str) -> None:
        """Replay (per subject through the API, and over the whole ledger) finds nothing."""
        for identifier in identifiers:
            report = self.replay(identifier)
            assert report["clean"] and report["problems"] == [], report
        full = self.service.replay_all()
        assert full.clean, full.problems


@pytest.fixture
def env(ledger: Ledger, tmp_path: Path, idp: Idp) -> Iterator[Env]:
    clock = [START]
    service = CreditService(ledger, master_key=MASTER_KEY, calendar=CALENDAR, today=lambda: clock[0])
    service.create_schema()
    assert service.ensure_rulebook() == "2026.2"  # set-up puts the shipped default in force
    assert service.active_rulebook().version == "2026.2"
    keys = {}
    for short, (name, role) in CLIENTS.items():
        keys[short] = new_api_key()
        ledger.store.add_client(name, role, api_key_hash(keys[short]), 0)
    settings = Settings(data_dir=tmp_path, run_scheduler=False)
    app = create_app(settings, ledger=ledger, credit=service, oidc=idp.verifier)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Env(client, ledger, service, clock, keys, idp)


def assert_problem(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["reason"] == reason and body["status"] == status and body["detail"], body
    return body


def verified_receipt(env: Env, response: httpx.Response) -> Receipt:
    """A receipt from the API, verified offline against the log's published key."""
    assert response.status_code == 200, response.text
    receipt = Receipt.from_json(response.content)
    result = verify_receipt(
        receipt, document_hash=SM3(canonical_json(receipt.record.metadata)), trusted_key=env.ledger.public_key
    )
    assert result.document_checked and result.key_pinned
    return receipt


# --- 1. events in, score and reasons out --------------------------------------------------------


def test_event_in_score_reasons_history_and_receipt(env: Env) -> None:
    [outcome] = env.submit("court", env.ev("contract_default", P1, "(2026)闽0102民初1号", name="张三"))
    assert (outcome["score"], outcome["level"], outcome["duplicate"]) == (680, "B", False)
    assert outcome["subject_ref"] == env.ref(P1).hex()
    event_id = outcome["event_id"]

    me = env.get_me(P1)
    assert (me["score"], me["level"], me["subject_ref"]) == (680, "B", env.ref(P1).hex())
    assert me["rulebook_version"] == "2026.2" and me["as_of"] == START.isoformat()
    assert me["breakdown"]["commercial"] == -20
    assert me["lists"] == {"black": [], "red": False, "red_eligible": False}
    assert me["next_change_on"] == "2027-03-02"
    [reason] = me["reasons"]
    assert reason["code"] == "contract_default" and reason["event_id"] == event_id
    assert (reason["points"], reason["source"], reason["occurred_on"]) == (-20, "city-court", "2026-03-02")
    assert reason["expires_on"] == "2027-03-02"  # general tier: one year
    assert reason["repair"] == {"route": "repair", "eligible_from": "2026-06-02"}  # after 3 months

    [change] = env.history(P1)
    assert change["before"] is None
    assert change["after"] == {"score": 680, "level": "B", "black": [], "red": False}
    assert change["cause"] == {"kind": "event"} and change["as_of"] == START.isoformat()
    assert change["rulebook"] == "2026.2"
    assert change["rulebook_hash"] == default_rulebook().canonical_hash().hex()
    assert [r["code"] for r in change["reasons"]] == ["contract_default"]

    [event] = env.get_me(P1, "/events")["data"]
    assert event["id"] == event_id and event["effects"] == [] and event["cases"] == []
    assert event["record_id"] == outcome["record_id"]

    receipt_url = f"/v1/credit/me/events/{event_id}/receipt"
    assert_problem(env.client.get(receipt_url, headers=env.me(P1)), 409, "receipt-pending")
    env.ledger.sequence_all()
    env.ledger.issue_checkpoint()
    receipt = verified_receipt(env, env.client.get(receipt_url, headers=env.me(P1)))
    assert receipt.record.id == outcome["record_id"]
    assert receipt.record.kind is RecordKind.CREDIT_EVENT
    assert receipt.record.subject_ref == env.ref(P1).hex()
    metadata = receipt.record.metadata
    assert (metadata["id"], metadata["type"], metadata["source"]) == (
        event_id,
        "contract_default",
        "city-court",
    )
    as_text = receipt.to_json()
    assert P1 not in as_text and "张三" not in as_text  # only the keyed reference leaves the database
    change_receipt = env.ledger.receipt(change["record_id"])
    verify_receipt(change_receipt, document_hash=SM3(canonical_json(change_receipt.record.metadata)))
    assert change_receipt.record.metadata["after"]["score"] == 680
    env.assert_clean(P1)


def test_a_person_can_use_the_example_id_and_an_enterprise_its_code(env: Env) -> None:
    env.submit("court", env.ev("adjudged_unpaid_debt", ELDER, "elder-1"))
    env.submit("market", env.ev("market_risk_d", COMPANY, "mr-1"))
    assert (env.get_me(ELDER)["score"], env.get_me(COMPANY)["score"]) == (670, 650)
    env.assert_clean(ELDER, COMPANY)


# --- 2. refusals --------------------------------------------------------------------------------


def test_intake_refusals_are_problems_with_reasons_and_store_nothing(env: Env) -> None:
    env.submit("court", env.ev("contract_default", P1, "c-0"))
    before = env.counts()
    bad_check = P2[:-1] + ("1" if P2[-1] != "1" else "2")
    body = assert_problem(
        env.post_events("court", env.ev("contract_default", bad_check, "c-1")), 400, "resident-id-check-digit"
    )
    assert body["detail"].startswith("event 0:")
    bad_code = COMPANY[:-1] + "2"
    assert_problem(
        env.post_events("court", env.ev("contract_default", bad_code, "c-1")), 400, "credit-code-check-digit"
    )
    assert_problem(env.post_events("court", env.ev("jaywalking", P2, "c-1")), 422, "unknown-type")
    assert_problem(
        env.post_events("court", env.ev("contract_default", P2, "c-1", religion="佛教")),
        422,
        "forbidden-field",
    )
    assert_problem(
        env.post_events("court", env.ev("contract_default", P2, "c-1", blood_type="A")),
        422,
        "forbidden-field",
    )
    assert_problem(
        env.post_events("court", env.ev("contract_default", P2, "c-1", income=100_000)),
        422,
        "consent-required",
    )
    assert_problem(
        env.post_events("court", env.ev("contract_default", P2, "c-1", colour="red")), 422, "unknown-field"
    )
    assert_problem(
        env.post_events("court", env.ev("tax_credit_d", COMPANY, "c-1")), 422, "source-not-allowed"
    )
    assert_problem(env.post_events("tax", env.ev("tax_credit_d", P2, "t-1")), 422, "subject-kind")
    future = env.ev("contract_default", P2, "c-1", occurred=START + timedelta(days=1))
    assert_problem(env.post_events("court", future), 422, "future-date")
    assert_problem(
        env.post_events("court", env.ev("contract_default", P2, "c-1", occurred_on="yesterday")),
        422,
        "invalid-date",
    )
    assert_problem(
        env.post_events("finance", env.ev("loan_arrears", P2, "f-1", quantity=13)), 422, "invalid-quantity"
    )
    assert_problem(env.post_events("court", env.ev("court_defaulter_delisted", P2, "c-1")), 422, "refers-to")
    assert_problem(env.post_events("court", env.ev("contract_default", P2, "")), 422, "source-ref")
    empty = env.client.post("/v1/credit/events", json={"events": []}, headers=env.auth("court"))
    assert_problem(empty, 422, "validation-error")
    # Who may submit.
    event = env.ev("contract_default", P2, "c-1")
    assert_problem(env.post_events("notarizer", event), 403, "role-required")
    assert_problem(env.post_events("approval", event), 403, "role-required")
    assert_problem(env.post_events("admin", event), 403, "source-required")
    no_key = env.client.post("/v1/credit/events", json={"events": [event]})
    assert_problem(no_key, 401, "missing-api-key")
    # Citizens need a token from the identity provider, and only that.
    assert_problem(env.client.get("/v1/credit/me"), 401, "missing-token")
    assert_problem(env.client.get("/v1/credit/me", headers=env.auth("auditor")), 401, "token-invalid")
    foreign = LocalIdentityProvider(env.idp.provider.issuer).issue_token(P1, audience=AUDIENCE)
    forged = env.client.get("/v1/credit/me", headers={"Authorization": f"Bearer {foreign}"})
    assert_problem(forged, 401, "token-invalid")
    other_audience = env.idp.provider.issue_token(P1, audience="another-service")
    wrong = env.client.get("/v1/credit/me", headers={"Authorization": f"Bearer {other_audience}"})
    assert_problem(wrong, 401, "token-audience")
    assert env.counts() == before


def test_same_source_ref_is_idempotent_and_other_content_conflicts(env: Env) -> None:
    event = env.ev("contract_default", P1, "c-1")
    [first] = env.submit("court", event)
    before = env.counts()
    [again] = env.submit("court", event)
    assert again["duplicate"] is True
    assert (again["event_id"], again["record_id"]) == (first["event_id"], first["record_id"])
    assert env.counts() == before
    assert len(env.history(P1)) == 1
    # The same reference from another source is another event.
    [other] = env.submit("market", event)
    assert other["duplicate"] is False and other["event_id"] != first["event_id"]
    assert env.get_me(P1)["score"] == 660
    before = env.counts()
    changed = env.ev("contract_default", P1, "c-1", occurred=START - timedelta(days=3))
    assert_problem(env.post_events("court", changed), 409, "conflict")
    assert_problem(env.post_events("court", env.ev("sued_in_breach", P1, "c-1")), 409, "conflict")
    assert_problem(env.post_events("court", env.ev("contract_default", P2, "c-1")), 409, "conflict")
    # Within one batch: a repeat with the same content is one event, with other content a conflict.
    [once] = env.submit("court", env.ev("contract_default", P2, "c-2"), env.ev("contract_default", P2, "c-2"))
    assert once["score"] == 680 and len(env.get_me(P2, "/events")["data"]) == 1
    before = env.counts()
    twice = env.post_events(
        "court", env.ev("contract_default", P3, "c-3"), env.ev("sued_in_breach", P3, "c-3")
    )
    assert_problem(twice, 409, "conflict")
    assert env.counts() == before
    env.assert_clean(P1, P2)


def test_same_source_ref_with_another_end_of_conduct_conflicts(env: Env) -> None:
    event = env.ev("loan_arrears", P1, "loan-1", occurred=date(2025, 6, 1), ended_on="2025-12-01")
    env.submit("finance", event)
    response = env.post_events("finance", event | {"ended_on": "2026-02-01"})
    assert_problem(response, 409, "conflict")


def test_a_batch_with_a_bad_third_event_stores_nothing(env: Env) -> None:
    env.submit("court", env.ev("contract_default", P1, "c-0"))
    before = env.counts()
    batch = [
        env.ev("contract_default", P2, "c-1"),
        env.ev("sued_in_breach", P3, "c-2"),
        env.ev("contract_default", P4, "c-3", religion="无"),
        env.ev("adjudged_unpaid_debt", P1, "c-4"),
    ]
    body = assert_problem(env.post_events("court", *batch), 422, "forbidden-field")
    assert body["detail"].startswith("event 2:")
    assert env.counts() == before
    # A batch that only fails while storing (a reused reference) stores nothing either.
    batch[2] = env.ev("sued_in_breach", P1, "c-0")
    assert_problem(env.post_events("court", *batch), 409, "conflict")
    assert env.counts() == before
    for identifier in (P2, P3, P4):
        assert_problem(env.client.get("/v1/credit/me", headers=env.me(identifier)), 404, "unknown-subject")
    assert env.get_me(P1)["score"] == 680
    env.assert_clean(P1)


def test_subject_kind_settles_an_ambiguous_identifier(env: Env) -> None:
    plain = env.post_events("court", env.ev("contract_default", AMBIGUOUS, "amb-1"))
    assert_problem(plain, 400, "identifier-ambiguous")
    env.submit("court", env.ev("contract_default", AMBIGUOUS, "amb-1", subject_kind="person"))


# --- 3. objections ------------------------------------------------------------------------------


def _file_objection(
    env: Env, identifier: str, event_id: str, statement: str = "合同已履行完毕"
) -> dict[str, Any]:
    response = env.client.post(
        "/v1/credit/me/objections",
        json={"event_id": event_id, "statement": statement},
        headers=env.me(identifier),
    )
    assert response.status_code == 201, response.text
    case: dict[str, Any] = response.json()
    return case


def _answer(env: Env, short: str, case_id: str, **body: Any) -> httpx.Response:
    response: httpx.Response = env.client.post(
        f"/v1/credit/objections/{case_id}/answer", json=body, headers=env.auth(short)
    )
    return response


def test_objection_overdue_then_corrected(env: Env) -> None:
    [outcome] = env.submit("court", env.ev("contract_default", P1, "c-1"))
    event_id = outcome["event_id"]
    case = _file_objection(env, P1, event_id)
    due = CALENDAR.add_working_days(START, 10)
    assert due == date(2026, 3, 16)
    assert (case["state"], case["kind"], case["event_id"]) == ("under-objection", "objection", event_id)
    assert (case["opened_on"], case["due_on"]) == (START.isoformat(), due.isoformat())
    assert [s["step"] for s in case["steps"]] == ["objection-filed"]
    assert env.event(P1, event_id)["cases"] == [
        {"id": case["id"], "kind": "objection", "state": "under-objection"}
    ]
    again = env.client.post(
        "/v1/credit/me/objections", json={"event_id": event_id, "statement": "再次异议"}, headers=env.me(P1)
    )
    assert_problem(again, 409, "duplicate")
    assert [c["id"] for c in env.get_me(P1, "/cases")["data"]] == [case["id"]]

    waiting = env.client.get("/v1/credit/objections", headers=env.auth("court")).json()
    assert [c["id"] for c in waiting["data"]] == [case["id"]]
    assert waiting["data"][0]["due_on"] == due.isoformat()
    assert env.client.get("/v1/credit/objections", headers=env.auth("tax")).json()["count"] == 0
    assert_problem(env.client.get("/v1/credit/objections", headers=env.auth("auditor")), 403, "role-required")

    env.travel(due + timedelta(days=1))
    report = env.service.run_daily()
    assert report.overdue == 1
    assert env.service.run_daily().overdue == 0  # flagged once
    steps = env.service.case(case["id"]).steps
    assert [s.step for s in steps] == ["objection-filed", "overdue"]
    assert steps[-1].on == env.today and steps[-1].actor == "credit-engine"

    assert _answer(env, "tax", case["id"], outcome="correct").status_code == 409  # not its event
    answered = _answer(env, "court", case["id"], outcome="correct", note="核实有误")
    assert answered.status_code == 200, answered.text
    assert answered.json()["state"] == "corrected"
    assert [s["step"] for s in answered.json()["steps"]][-2:] == ["objection-corrected", "effect-withdrawn"]
    me = env.get_me(P1)
    assert (me["score"], me["level"], me["reasons"]) == (700, "A", [])
    event = env.event(P1, event_id)
    assert event["effects"] == [{"kind": "withdrawn", "effective_on": env.today.isoformat()}]
    assert event["cases"][0]["state"] == "corrected"
    last = env.history(P1)[-1]
    assert last["cause"] == {"kind": "objection", "ref": case["id"]}
    assert last["before"]["score"] == 680 and last["after"]["score"] == 700
    assert last["as_of"] == env.today.isoformat()
    assert_problem(_answer(env, "court", case["id"], outcome="uphold"), 409, "workflow-state")
    assert env.client.get("/v1/credit/objections", headers=env.auth("court")).json()["count"] == 0
    env.assert_clean(P1)


def test_objection_upheld_unverifiable_and_corrected_with_a_replacement(env: Env) -> None:
    [a] = env.submit("court", env.ev("contract_default", P1, "c-1"))
    [b] = env.submit("court", env.ev("sued_in_breach", P1, "c-2"))
    [c] = env.submit("court", env.ev("adjudged_unpaid_debt", P1, "c-3", occurred=START - timedelta(days=10)))
    assert env.get_me(P1)["score"] == 700 - 20 - 50 - 30
    changes = len(env.history(P1))
    upheld = _file_objection(env, P1, a["event_id"])
    unverifiable = _file_objection(env, P1, b["event_id"])
    assert_problem(_answer(env, "court", upheld["id"], outcome="maybe"), 422, "validation-error")
    response = _answer(env, "court", upheld["id"], outcome="uphold", note="判决书在案")
    assert response.status_code == 200 and response.json()["state"] == "upheld"
    response = _answer(env, "court", unverifiable["id"], outcome="cannot-verify")
    assert response.status_code == 200 and response.json()["state"] == "unverifiable"
    assert env.get_me(P1)["score"] == 600 and len(env.history(P1)) == changes  # both items still count
    events = {e["id"]: e for e in env.get_me(P1, "/events")["data"]}
    assert events[b["event_id"]]["cases"] == [
        {"id": unverifiable["id"], "kind": "objection", "state": "unverifiable"}
    ]  # item and objection both stay on record
    assert events[b["event_id"]]["effects"] == []

    corrected = _file_objection(env, P1, c["event_id"], "日期有误")
    replacement = {"type": "adjudged_unpaid_debt", "occurred_on": (START - timedelta(days=400)).isoformat()}
    response = _answer(env, "court", corrected["id"], outcome="correct", replacement=replacement)
    assert response.status_code == 200, response.text
    events = {e["id"]: e for e in env.get_me(P1, "/events")["data"]}
    assert len(events) == 4
    [new] = [e for e in events.values() if e["source_ref"] == "c-3#correction"]
    assert new["occurred_on"] == replacement["occurred_on"]
    assert events[c["event_id"]]["effects"][0]["kind"] == "withdrawn"
    assert env.get_me(P1)["score"] == 630  # the corrected debt is more than a year old: expired
    assert env.history(P1)[-1]["cause"]["kind"] == "objection"
    env.assert_clean(P1)


def test_a_replacement_reusing_a_source_ref_is_a_conflict_not_a_crash(env: Env) -> None:
    [outcome] = env.submit("court", env.ev("contract_default", P1, "c-1"))
    case = _file_objection(env, P1, outcome["event_id"])
    replacement = {"type": "contract_default", "occurred_on": "2026-02-01", "source_ref": "c-1"}
    response = _answer(env, "court", case["id"], outcome="correct", replacement=replacement)
    assert response.status_code == 409, response.text


def test_a_correction_changing_list_status_needs_a_person(env: Env) -> None:
    [listed] = env.submit("court", env.ev("court_defaulter_listed", P1, "(2026)执1号"))
    assert (listed["score"], listed["level"]) == (599, "C")
    case = _file_objection(env, P1, listed["event_id"], "已履行,不应列入")
    before = env.counts()
    assert_problem(_answer(env, "court", case["id"], outcome="correct"), 409, "confirmation-required")
    assert env.counts() == before
    assert env.service.case(case["id"]).state is CaseState.UNDER_OBJECTION
    assert env.get_me(P1)["lists"]["black"][0]["list"] == "court_defaulters"
    response = _answer(env, "court", case["id"], outcome="correct", confirmed_by="王法官")
    assert response.status_code == 200, response.text
    assert response.json()["detail"]["confirmed_by"] == "王法官"
    me = env.get_me(P1)
    assert (me["score"], me["lists"]["black"]) == (700, [])
    last = env.history(P1)[-1]
    assert last["before"]["black"] == ["court_defaulters"] and last["after"]["black"] == []
    assert env.measures(P1, "travel_consumption")["measures"] == []
    env.assert_clean(P1)


# --- 4. repair ----------------------------------------------------------------------------------


def test_repair_after_the_minimum_period(env: Env) -> None:
    [general] = env.submit("court", env.ev("contract_default", P1, "c-1"))
    [other] = env.submit("court", env.ev("adjudged_unpaid_debt", P1, "c-2"))
    [arrears] = env.submit("finance", env.ev("loan_arrears", P1, "f-1", quantity=2))
    assert env.get_me(P1)["score"] == 700 - 20 - 30 - 20

    def apply(event_id: str, commitment: str = "本人承诺依法诚信经营") -> httpx.Response:
        response: httpx.Response = env.client.post(
            "/v1/credit/me/repairs", json={"event_id": event_id, "commitment": commitment}, headers=env.me(P1)
        )
        return response

    assert_problem(apply(general["event_id"]), 409, "too-early")
    assert_problem(apply(arrears["event_id"]), 409, "not-repairable")  # financial: only expiry
    assert_problem(apply(general["event_id"], "   "), 409, "commitment-required")
    env.travel(add_months(START, 3))
    assert_problem(apply(arrears["event_id"]), 409, "not-repairable")
    response = apply(general["event_id"])
    assert response.status_code == 201, response.text
    case = response.json()
    assert (case["state"], case["kind"]) == ("applied", "repair")
    assert case["due_on"] == CALENDAR.add_working_days(env.today, 3).isoformat()
    assert_problem(apply(general["event_id"]), 409, "duplicate")
    pending = env.client.get("/v1/credit/repairs", headers=env.auth("court")).json()
    assert [c["id"] for c in pending["data"]] == [case["id"]]
    assert env.client.get("/v1/credit/repairs", headers=env.auth("tax")).json()["count"] == 0
    assert env.client.get("/v1/credit/repairs", headers=env.auth("officer")).json()["count"] == 1

    decision = {"approve": True, "decided_by": "李法官", "note": "已履行"}
    url = f"/v1/credit/repairs/{case['id']}/decision"
    assert_problem(env.client.post(url, json=decision, headers=env.auth("tax")), 403, "not-your-case")
    assert_problem(env.client.post(url, json=decision, headers=env.auth("auditor")), 403, "role-required")
    env.travel(env.today + timedelta(days=1))
    decided = env.client.post(url, json=decision, headers=env.auth("court"))
    assert decided.status_code == 200, decided.text
    assert decided.json()["state"] == "approved"
    assert decided.json()["detail"]["decided_by"] == "city-court/李法官"
    assert env.get_me(P1)["score"] == 700 - 30 - 20
    last = env.history(P1)[-1]
    assert last["as_of"] == env.today.isoformat()  # anchored the same day
    assert last["cause"] == {"kind": "repair", "ref": case["id"]}
    assert (last["before"]["score"], last["after"]["score"]) == (630, 650)
    event = env.event(P1, general["event_id"])
    assert event["effects"] == [{"kind": "repaired", "effective_on": env.today.isoformat()}]
    assert "contract_default" not in [r["code"] for r in env.get_me(P1)["reasons"]]
    assert_problem(env.client.post(url, json=decision, headers=env.auth("court")), 409, "workflow-state")
    assert_problem(apply(general["event_id"]), 409, "not-repairable")  # repaired: no longer counts

    # A rejection changes nothing; an officer may decide too.
    rejected = apply(other["event_id"]).json()
    url = f"/v1/credit/repairs/{rejected['id']}/decision"
    no = env.client.post(url, json={"approve": False, "decided_by": "赵科长"}, headers=env.auth("officer"))
    assert no.status_code == 200 and no.json()["state"] == "rejected"
    assert env.get_me(P1)["score"] == 650
    env.assert_clean(P1)


def test_a_minor_event_can_be_repaired_at_once(env: Env) -> None:
    [late] = env.submit("utilities", env.ev("late_utility_fees", P1, "w-1"))
    response = env.client.post(
        "/v1/credit/me/repairs",
        json={"event_id": late["event_id"], "commitment": "已缴清"},
        headers=env.me(P1),
    )
    assert response.status_code == 201, response.text
    decided = env.client.post(
        f"/v1/credit/repairs/{response.json()['id']}/decision",
        json={"approve": True, "decided_by": "客服"},
        headers=env.auth("utilities"),
    )
    assert decided.status_code == 200, decided.text
    assert env.get_me(P1)["score"] == 700
    env.assert_clean(P1)


# --- 5. lists -----------------------------------------------------------------------------------


def test_black_list_measures_snapshot_proof_and_exit(env: Env) -> None:
    listings = env.submit(
        "court",
        env.ev("court_defaulter_listed", P1, "(2026)执1号"),
        env.ev("court_defaulter_listed", P2, "(2026)执2号"),
        env.ev("court_defaulter_listed", P3, "(2026)执3号"),
    )
    env.submit("court", env.ev("contract_default", P4, "c-4"))
    listing = listings[0]["event_id"]
    me = env.get_me(P1)
    assert (me["score"], me["level"]) == (599, "C")  # 650, capped on a black list
    [black] = me["lists"]["black"]
    assert (black["list"], black["event_id"], black["entered_on"]) == (
        "court_defaulters",
        listing,
        "2026-03-02",
    )
    assert black["exit_due"] == "2028-03-02" and "2 years" in black["exit_rule"]
    assert me["reasons"][0]["repair"] == {"route": "list-exit", "eligible_from": None}

    travel = env.measures(P1, "travel_consumption")
    assert travel["black"] == ["court_defaulters"] and travel["score"] == 599
    [measure] = travel["measures"]
    assert (measure["id"], measure["kind"]) == ("consumption_restriction", "punishment")
    assert measure["legal_basis"] == "最高人民法院关于限制被执行人高消费及有关消费的若干规定"
    assert any(listing in fact for fact in measure["facts"])
    procurement = env.measures(P1, "procurement")["measures"]
    assert [m["id"] for m in procurement] == ["procurement_bar"]
    assert any(listing in fact for fact in procurement[0]["facts"])
    assert env.measures(P4, "travel_consumption")["measures"] == []
    assert env.measures(P4, "parking")["measures"][0]["id"] == "parking_pay_later"  # B: still a reward
    unknown = env.client.post(
        "/v1/credit/measures",
        json={"subject": P1, "scenario": "casino", "purpose": "public_service"},
        headers=env.auth("approval"),
    )
    assert_problem(unknown, 404, "unknown-scenario")
    measures_by_auditor = env.client.post(
        "/v1/credit/measures",
        json={"subject": P1, "scenario": "procurement", "purpose": "public_procurement"},
        headers=env.auth("auditor"),
    )
    assert_problem(measures_by_auditor, 403, "role-required")

    publish = env.client.post("/v1/credit/lists/court_defaulters/snapshots", headers=env.auth("officer"))
    assert publish.status_code == 201, publish.text
    snapshot = publish.json()
    assert (snapshot["list"], snapshot["size"], snapshot["as_of"]) == ("court_defaulters", 3, "2026-03-02")
    assert_problem(
        env.client.post("/v1/credit/lists/court_defaulters/snapshots", headers=env.auth("auditor")),
        403,
        "role-required",
    )
    assert_problem(
        env.client.post("/v1/credit/lists/no_such_list/snapshots", headers=env.auth("officer")),
        404,
        "unknown-list",
    )
    listed = env.client.get("/v1/credit/lists/court_defaulters/snapshots", headers=env.auth("auditor")).json()
    [published] = listed["data"]
    assert (published["root"], published["record_id"]) == (snapshot["root"], snapshot["record_id"])
    record = env.ledger.records([snapshot["record_id"]])[snapshot["record_id"]][1]
    assert record.kind is RecordKind.CREDIT_LIST and record.content_hash == bytes.fromhex(snapshot["root"])

    hasher = tree_hasher(HashAlgorithm.SM3)
    root = bytes.fromhex(snapshot["root"])

    def proof_of(identifier: str) -> dict[str, Any]:
        response = env.client.get(
            f"/v1/credit/lists/snapshots/{published['seq']}/proof",
            params={
                "subject_ref": env.ref(identifier).hex(),
                "purpose": "public_procurement",
                "note": "招投标资格审查",
            },
            headers=env.auth("auditor"),
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    for identifier in (P1, P2, P3):
        proof = proof_of(identifier)
        assert proof["member"] is True and proof["root"] == snapshot["root"]
        path = [bytes.fromhex(h) for h in proof["proof"]]
        leaf = hasher.leaf_hash(env.ref(identifier))
        verify_inclusion(hasher, leaf, proof["index"], proof["size"], path, root)
        assert root_from_inclusion_proof(hasher, leaf, proof["index"], proof["size"], path) == root
    outsider = proof_of(P4)
    assert outsider["member"] is False and "proof" not in outsider

    # Leaving the list: the source's delisting refers to the listing's own reference.
    env.travel(START + timedelta(days=40))
    env.submit("court", env.ev("court_defaulter_delisted", P1, "(2026)执1号-结", refers_to="(2026)执1号"))
    me = env.get_me(P1)
    assert me["lists"]["black"] == []
    assert (me["score"], me["level"]) == (650, "B")  # the listing counts for a year after the exit
    assert env.measures(P1, "travel_consumption")["measures"] == []
    assert env.measures(P1, "procurement")["measures"] == []
    assert env.history(P1)[-1]["after"]["black"] == []
    again = env.client.post("/v1/credit/lists/court_defaulters/snapshots", headers=env.auth("officer")).json()
    assert again["size"] == 2
    assert proof_of(P1)["member"] is True  # the earlier snapshot still proves what was published
    env.assert_clean(P1, P2, P3, P4)


def test_red_list_review_confirmation_and_removal_by_a_serious_event(env: Env) -> None:
    env.travel(date(2026, 12, 1))
    env.submit(
        "honours",
        env.ev("bravery_province", P1, "hon-1"),
        env.ev("honour_national", P1, "hon-2"),
        env.ev("honour_provincial", P1, "hon-3"),  # highest honour only
    )
    env.submit("honours", env.ev("honour_street", P2, "hon-4"))
    me = env.get_me(P1)
    assert (me["score"], me["level"]) == (780, "AA")
    assert me["lists"]["red"] is False and me["lists"]["red_eligible"] is True
    assert me["reasons"] == []
    assert env.get_me(P2)["lists"]["red_eligible"] is False

    env.travel(date(2027, 1, 15))  # the yearly review date
    report = env.service.run_daily()
    assert report.proposals == 1
    cases = env.client.get("/v1/credit/list-cases", headers=env.auth("officer")).json()
    [case] = cases["data"]
    assert case["subject_ref"] == env.ref(P1).hex()
    assert case["detail"]["action"] == "enter" and case["detail"]["list"] == "red"
    assert_problem(env.client.get("/v1/credit/list-cases", headers=env.auth("court")), 403, "role-required")
    assert env.get_me(P1)["lists"]["red"] is False  # only a person puts someone on a list
    assert env.service.run_daily().proposals == 0  # once a year

    url = f"/v1/credit/list-cases/{case['id']}/decision"
    decided = env.client.post(
        url, json={"approve": True, "decided_by": "陈主任"}, headers=env.auth("officer")
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["state"] == "confirmed"
    assert env.get_me(P1)["lists"]["red"] is True
    assert env.history(P1)[-1]["cause"] == {"kind": "list", "ref": case["id"]}
    approval = env.measures(P1, "administrative_approval")
    assert approval["red"] is True
    assert "approval_green_channel" in [m["id"] for m in approval["measures"]]
    green = next(m for m in approval["measures"] if m["id"] == "approval_green_channel")
    assert green["legal_basis"] == "国发〔2016〕33号" and green["facts"] == ["on the red list"]
    assert "subsidy_priority" in [m["id"] for m in env.measures(P1, "subsidies")["measures"]]

    env.travel(date(2027, 2, 3))
    [conviction] = env.submit("court", env.ev("criminal_conviction", P1, "(2027)刑1号"))
    assert conviction["score"] == 680
    me = env.get_me(P1)
    assert me["lists"]["red"] is False and me["lists"]["red_eligible"] is False  # at once
    approval = env.measures(P1, "administrative_approval")
    assert approval["red"] is False and approval["measures"] == []
    proposals = env.client.get("/v1/credit/list-cases", headers=env.auth("officer")).json()["data"]
    [exit_case] = proposals
    assert exit_case["detail"]["action"] == "exit" and exit_case["subject_ref"] == env.ref(P1).hex()
    url = f"/v1/credit/list-cases/{exit_case['id']}/decision"
    decided = env.client.post(
        url, json={"approve": True, "decided_by": "陈主任"}, headers=env.auth("officer")
    )
    assert decided.status_code == 200, decided.text
    assert env.client.get("/v1/credit/list-cases", headers=env.auth("officer")).json()["count"] == 0
    env.assert_clean(P1, P2)


def test_a_serious_event_reported_after_entry_removes_from_the_red_list(env: Env) -> None:
    env.travel(date(2026, 12, 1))
    env.submit("honours", env.ev("bravery_province", P1, "hon-1"), env.ev("honour_national", P1, "hon-2"))
    env.travel(date(2027, 1, 15))
    env.service.run_daily()
    [case] = env.client.get("/v1/credit/list-cases", headers=env.auth("officer")).json()["data"]
    env.client.post(
        f"/v1/credit/list-cases/{case['id']}/decision",
        json={"approve": True, "decided_by": "陈主任"},
        headers=env.auth("officer"),
    )
    env.travel(date(2027, 1, 20))
    env.submit("court", env.ev("criminal_conviction", P1, "(2027)刑1号", occurred=date(2027, 1, 10)))
    assert env.get_me(P1)["lists"]["red"] is False
    assert env.measures(P1, "administrative_approval")["measures"] == []


def test_a_delisting_must_name_an_existing_listing(env: Env) -> None:
    env.submit("court", env.ev("court_defaulter_listed", P1, "(2026)执1号"))
    typo = env.ev("court_defaulter_delisted", P1, "(2026)执1号-结", refers_to="(2026)执l号")
    assert_problem(env.post_events("court", typo), 422, "refers-to")


# --- 6. access log and scoping ------------------------------------------------------------------


def test_access_log_and_each_token_sees_only_its_own_data(env: Env) -> None:
    [first] = env.submit("court", env.ev("contract_default", P1, "c-1"))
    [second] = env.submit("court", env.ev("sued_in_breach", P2, "c-2"))
    assert env.get_me(P1)["score"] == 680
    env.measures(P1, "parking", purpose="public_service", note="停车场先离场后付费资格")
    subject = env.client.get(
        f"/v1/credit/subjects/{env.ref(P1).hex()}",
        params={"purpose": "objection_review", "note": "投诉核查"},
        headers=env.auth("auditor"),
    )
    assert subject.status_code == 200, subject.text
    body = subject.json()
    assert body["score"] == 680 and body["stored"]["score"] == 680
    assert [e["id"] for e in body["events"]] == [first["event_id"]] and len(body["history"]) == 1
    assert_problem(
        env.client.get(f"/v1/credit/subjects/{env.ref(P1).hex()}", headers=env.auth("auditor")),
        422,
        "validation-error",
    )
    assert_problem(
        env.client.get(
            f"/v1/credit/subjects/{env.ref(P1).hex()}",
            params={"purpose": "credit_audit"},
            headers=env.auth("approval"),
        ),
        403,
        "role-required",
    )
    assert_problem(
        env.client.get(
            "/v1/credit/subjects/abc", params={"purpose": "credit_audit"}, headers=env.auth("auditor")
        ),
        400,
        "invalid-subject-ref",
    )

    log = env.get_me(P1, "/access-log")["data"]
    by_accessor = {entry["accessor"]: entry for entry in log}
    approval = by_accessor["approval-portal"]
    assert (approval["role"], approval["purpose"], approval["note"], approval["what"]) == (
        "approval",
        "public_service",
        "停车场先离场后付费资格",
        "measures",
    )
    auditor = by_accessor["audit-office"]
    assert (auditor["role"], auditor["purpose"], auditor["note"], auditor["what"]) == (
        "auditor",
        "objection_review",
        "投诉核查",
        "subject",
    )
    assert log.index(auditor) < log.index(approval)  # newest first
    for entry in (approval, auditor):
        [(_, leaf)] = env.ledger.records([entry["record_id"]]).values()
        assert leaf.kind is RecordKind.ACCESS and leaf.subject_ref == env.ref(P1)
        assert leaf.metadata["accessor"] == entry["accessor"] and leaf.metadata["purpose"] == entry["purpose"]
        assert leaf.metadata["note"] == entry["note"] and leaf.metadata["window_s"] == 3600
        assert P1 not in json.dumps(leaf.metadata, ensure_ascii=False)
    assert any(e["accessor"] == "the subject" and e["what"] == "score" for e in log)

    # Another person's token sees only that person's data.
    assert env.get_me(P2)["subject_ref"] == env.ref(P2).hex()
    assert env.get_me(P2)["score"] == 650
    assert [e["id"] for e in env.get_me(P2, "/events")["data"]] == [second["event_id"]]
    assert all(c["after"]["score"] == 650 for c in env.history(P2))
    other_log = env.get_me(P2, "/access-log")["data"]
    assert {e["accessor"] for e in other_log} == {"the subject"}
    env.ledger.sequence_all()
    env.ledger.issue_checkpoint()
    stolen = env.client.get(f"/v1/credit/me/events/{first['event_id']}/receipt", headers=env.me(P2))
    assert_problem(stolen, 404, "unknown-event")
    objection = env.client.post(
        "/v1/credit/me/objections", json={"event_id": first["event_id"], "statement": "x"}, headers=env.me(P2)
    )
    assert_problem(objection, 404, "unknown-event")
    repair = env.client.post(
        "/v1/credit/me/repairs", json={"event_id": first["event_id"], "commitment": "x"}, headers=env.me(P2)
    )
    assert_problem(repair, 404, "unknown-event")
    assert env.get_me(P2, "/cases")["data"] == []
    assert env.get_me(P1)["score"] == 680  # untouched
    env.assert_clean(P1, P2)


# --- 7. replay ----------------------------------------------------------------------------------


def test_score_on_a_past_day_for_the_subject_and_an_auditor(env: Env) -> None:
    env.submit("court", env.ev("contract_default", P1, "c-1"))
    env.travel(START + timedelta(days=30))
    day = START + timedelta(days=10)
    env.submit("utilities", env.ev("late_utility_fees", P1, "u-1", occurred=day))  # reported late

    mine = env.get_me(P1, f"/on/{day.isoformat()}")
    assert (mine["day"], mine["subject_ref"]) == (day.isoformat(), env.ref(P1).hex())
    assert (mine["recomputed"]["score"], mine["recomputed"]["as_of"]) == (660, day.isoformat())
    assert mine["recomputed"]["rulebook_version"] == "2026.2"
    assert {r["code"] for r in mine["recomputed"]["reasons"]} == {"contract_default", "late_utility_fees"}
    assert mine["recorded"]["after"]["score"] == 680 and mine["recorded"]["as_of"] == START.isoformat()
    assert mine["agrees"] is False
    scenarios = [m["scenario"] for m in mine["measures"]]
    assert "procurement" in scenarios and len(scenarios) == len(set(scenarios))

    url = f"/v1/credit/subjects/{env.ref(P1).hex()}/on/{day.isoformat()}"
    audited = env.client.get(url, params={"purpose": "credit_audit"}, headers=env.auth("auditor"))
    assert audited.status_code == 200, audited.text
    assert audited.json() == mine
    what = [e["what"] for e in env.get_me(P1, "/access-log")["data"]]
    assert what.count("score-on-date") == 2

    tomorrow = (env.today + timedelta(days=1)).isoformat()
    assert_problem(env.client.get(f"/v1/credit/me/on/{tomorrow}", headers=env.me(P1)), 400, "invalid-date")
    assert_problem(env.client.get("/v1/credit/me/on/2026-13-01", headers=env.me(P1)), 422, "validation-error")
    assert_problem(env.client.get(url, headers=env.auth("auditor")), 422, "validation-error")  # no purpose
    before = START - timedelta(days=1)
    assert_problem(
        env.client.get(f"/v1/credit/me/on/{before.isoformat()}", headers=env.me(P1)), 404, "no-rulebook-then"
    )


def test_replay_is_clean_until_a_score_is_edited_in_the_database(env: Env) -> None:
    a, _ = env.submit("court", env.ev("contract_default", P1, "c-1"), env.ev("sued_in_breach", P2, "c-2"))
    case = _file_objection(env, P1, a["event_id"])
    env.travel(START + timedelta(days=5))
    assert _answer(env, "court", case["id"], outcome="correct").status_code == 200
    report = env.replay(P1)
    assert report["clean"] and report["changes"] == 2 and report["events"] == 1
    assert_problem(
        env.client.post(
            "/v1/credit/replay",
            json={"subject_ref": env.ref(P1).hex(), "purpose": "credit_audit"},
            headers=env.auth("court"),
        ),
        403,
        "role-required",
    )
    assert env.service.replay_all().clean
    with env.ledger.store.engine.begin() as conn:
        conn.execute(text("UPDATE credit_score SET score = score + 5"))
    tampered = env.replay(P1)
    assert tampered["clean"] is False
    assert any("stored score" in p for p in tampered["problems"])
    full = env.service.replay_all()
    assert not full.clean and len(full.problems) == 2
    assert any(
        e["what"] == "replay" and e["accessor"] == "audit-office"
        for e in env.get_me(P1, "/access-log")["data"]
    )


def test_cli_replay_all_reports_a_difference(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "var"
    where = ["--data-dir", str(data_dir), "--database-url", database_url]
    assert main(["init", *where]) == 0
    settings = Settings(data_dir=data_dir, database_url=database_url)
    clock = [START]
    service = open_credit(open_ledger(settings), settings, today=lambda: clock[0])
    court = Source("city-court", "court")
    service.submit_events(
        court,
        [
            {"type": "contract_default", "subject": P1, "occurred_on": "2026-03-02", "source_ref": "c-1"},
            {
                "type": "court_defaulter_listed",
                "subject": P2,
                "occurred_on": "2026-03-02",
                "source_ref": "c-2",
            },
        ],
    )
    clock[0] = date(2027, 3, 2)
    assert service.run_daily().changed == 1  # the default expired
    service.ledger.store.engine.dispose()
    capsys.readouterr()
    assert main(["credit", "replay", "--all", *where]) == 0
    out = capsys.readouterr().out
    assert "replay: clean" in out and "subjects: 2" in out
    assert main(["credit", "replay", P1, "--by", "审计员", *where]) == 0
    capsys.readouterr()
    [access] = service.access_log(service.subject_ref(P1)[0])
    assert (access.accessor, access.purpose, access.what) == ("审计员", "credit_audit", "replay")
    engine = service.ledger.store.engine
    with engine.begin() as conn:
        conn.execute(text("UPDATE credit_score SET score = score + 5"))
    engine.dispose()
    assert main(["credit", "replay", "--all", *where]) == 1
    out = capsys.readouterr().out
    assert out.count("DIFFERENCE") == 2 and "replay: 2 difference(s)" in out


# --- 8. rulebooks -------------------------------------------------------------------------------


def test_rulebook_is_published_and_a_new_version_recomputes(env: Env) -> None:
    listed = env.client.get("/v1/credit/rulebooks").json()
    [default] = listed["data"]
    assert default["version"] == "2026.2" and default["activated_on"] == START.isoformat()
    canonical = env.client.get("/v1/credit/rulebooks/2026.2")
    assert canonical.status_code == 200 and canonical.headers["content-type"].startswith("application/json")
    assert SM3(canonical.content).hex() == default["hash"]
    assert canonical.content == canonical_json(json.loads(canonical.content))  # RFC 8785 form
    [(_, leaf)] = env.ledger.records([default["record_id"]]).values()
    assert leaf.kind is RecordKind.CREDIT_RULEBOOK and leaf.content_hash.hex() == default["hash"]
    assert_problem(env.client.get("/v1/credit/rulebooks/1999.9"), 404, "unknown-rulebook")

    env.submit("court", env.ev("contract_default", P1, "c-1"))
    env.submit("honours", env.ev("honour_district", P2, "h-1"))
    assert env.get_me(P1)["score"] == 680
    data = json.loads(canonical.content)
    data["version"] = "2026.3"
    data["event_types"]["contract_default"]["points"] = -30
    modified = rulebook_from_data(data)
    env.travel(START + timedelta(days=10))
    report = env.service.activate_rulebook(modified, by="规则委员会")
    assert report.recomputed == 2
    me = env.get_me(P1)
    assert (me["score"], me["rulebook_version"]) == (670, "2026.3")
    last = env.history(P1)[-1]
    assert last["cause"] == {"kind": "rulebook", "ref": "2026.3"}
    assert last["rulebook_hash"] == modified.canonical_hash().hex()
    assert (last["before"]["score"], last["after"]["score"]) == (680, 670)
    # P2's score does not move under 2026.3: no change is recorded, the stored row notes the version.
    assert env.history(P2)[-1]["rulebook"] == "2026.2"
    assert env.service.score(env.service.subject_ref(P2)[0]).rulebook_version == "2026.3"
    versions = env.client.get("/v1/credit/rulebooks").json()["data"]
    assert [v["version"] for v in versions] == ["2026.2", "2026.3"]
    new = env.client.get("/v1/credit/rulebooks/2026.3").content
    assert SM3(new).hex() == versions[1]["hash"] == modified.canonical_hash().hex()
    with pytest.raises(Conflict, match="already activated"):
        env.service.activate_rulebook(modified, by="again")
    env.assert_clean(P1, P2)


# --- 9. crypto-shredding ------------------------------------------------------------------------


def test_erasing_personal_data_keeps_receipts_and_replay(env: Env) -> None:
    [outcome] = env.submit("court", env.ev("contract_default", P1, "c-1", name="张三"))
    ref = env.ref(P1)
    assert env.service.personal_data(ref) == PersonalData(P1, "张三")
    env.service.erase_personal_data(ref, by="数据保护官")
    with pytest.raises(UnknownSubject):
        env.service.personal_data(ref)
    with env.ledger.store.engine.connect() as conn:
        row = conn.execute(
            text("SELECT wrapped_key, sealed_identifier, sealed_name FROM credit_subject WHERE ref = :r"),
            {"r": ref},
        ).one()
    assert tuple(row) == (None, None, None)
    env.ledger.sequence_all()
    env.ledger.issue_checkpoint()
    receipt = verified_receipt(
        env, env.client.get(f"/v1/credit/me/events/{outcome['event_id']}/receipt", headers=env.me(P1))
    )
    assert receipt.record.subject_ref == ref.hex()
    assert env.get_me(P1)["score"] == 680  # scores stand on the keyed reference
    env.assert_clean(P1)


# --- 10. tamper-evident history -------------------------------------------------------------------


def _forge_newest_change(env: Env, identifier: str, score: int) -> str:
    """Edit the subject's newest ``credit_change`` row in the database; its record id."""
    ref = env.ref(identifier)
    with env.ledger.store.engine.begin() as conn:
        seq, record_id, document = conn.execute(
            text(
                "SELECT seq, record_id, document FROM credit_change WHERE subject_ref = :r ORDER BY seq DESC"
            ),
            {"r": ref},
        ).first()
        document = json.loads(document) if isinstance(document, str) else document
        document["after"]["score"] = score
        conn.execute(
            text("UPDATE credit_change SET document = :d WHERE seq = :s"),
            {"d": json.dumps(document), "s": seq},
        )
    return str(record_id)


def test_an_edited_history_row_is_served_as_recorded(env: Env) -> None:
    env.submit("court", env.ev("sued_in_breach", P1, "c-1"))
    env.ledger.sequence_all()
    record_id = _forge_newest_change(env, P1, 651)
    [change] = env.history(P1)
    assert change["after"]["score"] == 650 and change["record_id"] == record_id
    subject = env.client.get(
        f"/v1/credit/subjects/{env.ref(P1).hex()}",
        params={"purpose": "credit_audit"},
        headers=env.auth("auditor"),
    )
    assert subject.status_code == 200, subject.text
    assert [c["after"]["score"] for c in subject.json()["history"]] == [650]
    index = env.ledger.record(record_id).log_index
    replay = env.replay(P1)
    assert not replay["clean"]
    assert any(record_id in p and f"log index {index}" in p for p in replay["problems"]), replay


def test_a_deleted_newest_change_is_refused_not_served(env: Env) -> None:
    env.submit("court", env.ev("contract_default", P1, "c-1"))
    env.travel(START + timedelta(days=1))
    [second] = env.submit("court", env.ev("sued_in_breach", P1, "c-2"))
    newest = env.history(P1)[-1]["record_id"]
    with env.ledger.store.engine.begin() as conn:
        conn.execute(text("DELETE FROM credit_change WHERE record_id = :r"), {"r": newest})
    accesses = env.counts()
    body = assert_problem(
        env.client.get("/v1/credit/me/history", headers=env.me(P1)), 503, "credit-integrity"
    )
    assert newest in body["detail"]
    assert_problem(
        env.client.get(
            f"/v1/credit/subjects/{env.ref(P1).hex()}",
            params={"purpose": "credit_audit"},
            headers=env.auth("auditor"),
        ),
        503,
        "credit-integrity",
    )
    assert env.counts() == accesses  # the refused reads left no access record behind
    assert second["score"] == 630
    report = env.service.replay_all()
    assert any(newest in p and "no credit_change row" in p for p in report.problems), report.problems


def test_cli_audit_and_replay_notice_edited_and_deleted_credit_rows(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "var"
    where = ["--data-dir", str(data_dir), "--database-url", database_url]
    assert main(["init", *where]) == 0
    settings = Settings(data_dir=data_dir, database_url=database_url)
    service = open_credit(open_ledger(settings), settings, today=lambda: START)
    court = Source("city-court", "court")
    for n, subject in enumerate((P1, P2)):
        event = {
            "type": "sued_in_breach",
            "subject": subject,
            "occurred_on": "2026-03-02",
            "source_ref": f"c-{n}",
        }
        service.submit_events(court, [event])
    service.ledger.sequence_all()
    service.ledger.issue_checkpoint()
    engine = service.ledger.store.engine
    with engine.connect() as conn:
        seq, record_id, document = conn.execute(
            text("SELECT seq, record_id, document FROM credit_change ORDER BY seq DESC")
        ).first()
    index = service.ledger.record(record_id).log_index
    engine.dispose()
    capsys.readouterr()
    assert main(["audit", *where]) == 0
    assert "credit rows" in capsys.readouterr().out
    forged = json.loads(document) if isinstance(document, str) else document
    forged["after"]["score"] = 651
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE credit_change SET document = :d WHERE seq = :s"), {"d": json.dumps(forged), "s": seq}
        )
    engine.dispose()
    for command in (["audit"], ["credit", "replay", "--all"]):
        assert main([*command, *where]) == 1
        out = capsys.readouterr().out
        assert record_id in out and f"log index {index}" in out and "651" in out, out
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM credit_change WHERE seq = :s"), {"s": seq})
    engine.dispose()
    for command in (["audit"], ["credit", "replay", "--all"]):
        assert main([*command, *where]) == 1
        out = capsys.readouterr().out
        assert record_id in out and f"log index {index}" in out and "no credit_change row" in out, out


# --- 11. no identity oracle -------------------------------------------------------------------------


def test_a_notarized_subject_id_does_not_reveal_the_credit_reference(env: Env) -> None:
    env.submit("court", env.ev("contract_default", P1, "c-1"))
    credit_ref = env.ref(P1)
    posted = env.client.post(
        "/v1/records",
        json={"kind": "certificate", "content": {"n": 1}, "subject_id": P1},
        headers=env.auth("notarizer"),
    )
    assert posted.status_code == 202, posted.text
    leaf = env.ledger.record(posted.json()["id"]).leaf
    assert leaf.subject_ref is not None and leaf.subject_ref != credit_ref
    # Stable within its family (a notarizer can still find its own records about a person) ...
    again = env.client.post(
        "/v1/records",
        json={"kind": "evidence", "content": {"n": 2}, "subject_id": P1.lower()},
        headers=env.auth("notarizer"),
    )
    assert env.ledger.record(again.json()["id"]).leaf.subject_ref == leaf.subject_ref
    # ... but no credit read accepts it: the auditor finds no credit data under it.
    assert_problem(
        env.client.get(
            f"/v1/credit/subjects/{leaf.subject_ref.hex()}",
            params={"purpose": "credit_audit"},
            headers=env.auth("auditor"),
        ),
        404,
        "unknown-subject",
    )
    assert env.ledger.subject_ref(P1) == leaf.subject_ref  # the records family is the default


# --- 12. reading does not grow the log; purposes come from the catalogue; failed reads write nothing


def _access_rows(env: Env) -> int:
    with env.ledger.store.engine.connect() as conn:
        count: int = conn.execute(text("SELECT count(*) FROM credit_access")).scalar_one()
    return count


def test_repeat_reads_are_counted_not_each_a_ledger_record(env: Env) -> None:
    env.submit("court", env.ev("contract_default", P1, "c-1"))
    before = env.counts()["record"]
    for _ in range(25):
        env.get_me(P1)
    unseen = person(99)
    for _ in range(25):
        env.measures(unseen, "parking", purpose="public_service")
    assert env.counts()["record"] == before + 2  # one access record per reader, subject, purpose, window
    [mine] = [e for e in env.get_me(P1, "/access-log")["data"] if e["what"] == "score"]
    assert (mine["accessor"], mine["purpose"], mine["count"], mine["window_s"]) == (
        "the subject",
        "self_query",
        25,
        86_400,
    )
    assert mine["last_at_us"] >= mine["at_us"]
    [looked_up] = env.get_me(unseen, "/access-log")["data"]
    assert (looked_up["accessor"], looked_up["count"], looked_up["window_s"]) == ("approval-portal", 25, 3600)
    # Another purpose or another kind of data is another access, recorded at once.
    env.measures(unseen, "procurement", purpose="public_procurement")
    env.history(P1)
    assert env.counts()["record"] == before + 4
    assert env.service.replay_all().clean  # counters are not part of the records


def test_the_record_window_is_configurable(env: Env) -> None:
    env.service.access_policy = load_access_policy().model_copy(
        update={"windows": Windows(self_hours=24, other_hours=0)}
    )
    env.submit("court", env.ev("contract_default", P1, "c-1"))
    before = env.counts()["record"]
    for _ in range(3):
        env.measures(P1, "parking", purpose="public_service")
    assert env.counts()["record"] == before + 3  # a window of 0: every read is its own record


@pytest.mark.parametrize(
    "purpose", [" ", "\u200b", "", "Audit", "x" * 65, "casino_marketing", "credit_audit", "self_query"]
)
def test_measures_purpose_must_be_a_catalogue_code_for_the_reader(env: Env, purpose: str) -> None:
    before = (env.counts()["record"], _access_rows(env))
    response = env.client.post(
        "/v1/credit/measures",
        json={"subject": P1, "scenario": "parking", "purpose": purpose},
        headers=env.auth("approval"),
    )
    if purpose in ("casino_marketing", "credit_audit", "self_query"):
        body = assert_problem(response, 400, "unknown-purpose")
        assert "administrative_approval" in body["detail"] and "public_service" in body["detail"]
        assert "credit_audit" not in body["detail"].split("use one of:")[1]
    else:
        assert_problem(response, 422, "validation-error")
    assert (env.counts()["record"], _access_rows(env)) == before


def test_purpose_notes_are_bounded_visible_text(env: Env) -> None:
    for note, status in (("\u200b", 422), ("a\u200bb", 422), ("x" * 201, 422), ("\x07bell", 422)):
        response = env.client.post(
            "/v1/credit/measures",
            json={"subject": P1, "scenario": "parking", "purpose": "public_service", "purpose_note": note},
            headers=env.auth("approval"),
        )
        assert_problem(response, status, "validation-error")
    for params in (
        {"purpose": " "},
        {"purpose": "credit_audit", "note": "\u200b"},
        {"purpose": "public_service"},
    ):
        response = env.client.get(
            f"/v1/credit/subjects/{env.ref(P1).hex()}", params=params, headers=env.auth("auditor")
        )
        assert response.status_code in (400, 422), response.text
    assert _access_rows(env) == 0


def _deployment_with_one_event(
    tmp_path: Path, database_url: str, day: date
) -> tuple[list[str], CreditService]:
    """``trustledger init`` in a temp dir, then P1's contract default dated and recorded on ``day``;
    the CLI's location arguments and the credit service (its pool closed for the CLI's turn)."""
    data_dir = tmp_path / "var"
    where = ["--data-dir", str(data_dir), "--database-url", database_url]
    assert main(["init", *where]) == 0
    settings = Settings(data_dir=data_dir, database_url=database_url)
    service = open_credit(open_ledger(settings), settings, today=lambda: day)
    event = {"type": "contract_default", "subject": P1, "occurred_on": day.isoformat(), "source_ref": "c-1"}
    service.submit_events(Source("city-court", "court"), [event])
    service.ledger.close()
    return where, service


def test_cli_show_takes_a_catalogue_purpose(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    where, service = _deployment_with_one_event(tmp_path, database_url, START)
    capsys.readouterr()
    assert main(["credit", "show", P1, "--by", "ops", "--purpose", "because", *where]) == 2
    assert "objection_review" in capsys.readouterr().err
    assert _count(service, "credit_access") == 0
    assert (
        main(
            [
                "credit",
                "show",
                P1,
                "--by",
                "ops",
                "--purpose",
                "objection_review",
                "--note",
                "工单 12",
                *where,
            ]
        )
        == 0
    )
    assert _count(service, "credit_access") == 1


def test_cli_show_on_a_past_day(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    today = date.today()  # init puts the shipped rulebook in force on the real clock's day
    where, service = _deployment_with_one_event(tmp_path, database_url, today)
    capsys.readouterr()
    on = ["credit", "show", P1, "--by", "ops", "--purpose", "objection_review", "--on"]
    assert main([*on, today.isoformat(), *where]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["day"], shown["recomputed"]["score"], shown["recorded"]["after"]["score"]) == (
        today.isoformat(),
        680,
        680,
    )
    assert shown["agrees"] is True and _count(service, "credit_access") == 1
    assert main([*on, (today + timedelta(days=1)).isoformat(), *where]) == 2  # a day still to come
    assert main([*on, (today - timedelta(days=1)).isoformat(), *where]) == 3  # no rulebook in force yet
    assert _count(service, "credit_access") == 1


def _count(service: CreditService, table: str) -> int:
    with service.ledger.store.engine.connect() as conn:
        count: int = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    service.ledger.store.engine.dispose()
    return count


def test_event_fields_are_bounded_with_the_right_messages(env: Env) -> None:
    before = env.counts()
    huge_name = env.ev("contract_default", P1, "c-1", name="张" * 1_000_000)
    body = assert_problem(env.post_events("court", huge_name), 422, "validation-error")
    assert "events.0.name" in body["detail"] and "64" in body["detail"]
    long_ref = env.ev("contract_default", P1, "r" * 100_000)
    body = assert_problem(env.post_events("court", long_ref), 422, "validation-error")
    assert "source_ref" in body["detail"] and "200" in body["detail"] and "required" not in body["detail"]
    for bad in (
        env.ev("contract_default", P1, "c-1", name="张\u200b三"),
        env.ev("contract_default", P1, "c-1\x00"),
        env.ev("contract_default", P1, "c-1", quantity=10**12),
        env.ev("contract_default", P1, "c-1", quantity="3"),
        env.ev("contract_default", P1, "c-1", evidence_record_id="not-a-record"),
        env.ev("contract_default", P1, "c-1", refers_to="x" * 201),
        env.ev("contract_default", P1, "c-1", occurred_on="2026-03-02" * 1000),
        env.ev("x" * 65, P1, "c-1"),
        env.ev("contract_default", "1" * 200, "c-1"),
    ):
        assert_problem(env.post_events("court", bad), 422, "validation-error")
    assert env.counts() == before
    # The service bounds them too (for callers other than the API), with its own reasons.
    with pytest.raises(InvalidEvent, match="longer than 200") as refused:
        env.service.submit_events(
            Source("city-court", "court"),
            [
                {
                    "type": "contract_default",
                    "subject": P1,
                    "occurred_on": "2026-03-02",
                    "source_ref": "r" * 100_000,
                }
            ],
        )
    assert refused.value.reason == "source-ref"
    with pytest.raises(InvalidEvent, match="name is longer than 64"):
        env.service.submit_events(
            Source("city-court", "court"),
            [
                {
                    "type": "contract_default",
                    "subject": P1,
                    "occurred_on": "2026-03-02",
                    "source_ref": "c-1",
                    "name": "x" * 1_000_000,
                }
            ],
        )
    assert env.counts() == before


def test_workflow_request_fields_are_bounded(env: Env) -> None:
    [event] = env.submit("court", env.ev("contract_default", P1, "c-1"))
    for body in (
        {"event_id": event["event_id"], "statement": "x" * 4001},
        {"event_id": event["event_id"], "statement": "wrong\u200b"},
        {"event_id": "E" * 40, "statement": "x"},
        {"event_id": event["event_id"] * 100, "statement": "x"},
    ):
        response = env.client.post("/v1/credit/me/objections", json=body, headers=env.me(P1))
        assert_problem(response, 422, "validation-error")
    for decision in ({"approve": True, "decided_by": " "}, {"approve": True, "decided_by": "x" * 129}):
        response = env.client.post(
            f"/v1/credit/list-cases/{'0' * 32}/decision", json=decision, headers=env.auth("officer")
        )
        assert_problem(response, 422, "validation-error")
    response = env.client.post(
        "/v1/credit/list-cases/not-a-case/decision",
        json={"approve": True, "decided_by": "陈"},
        headers=env.auth("officer"),
    )
    assert_problem(response, 422, "validation-error")


def test_a_failed_read_leaves_no_access_record(env: Env) -> None:
    env.submit("court", env.ev("contract_default", P1, "c-1"))
    publish = env.client.post("/v1/credit/lists/court_defaulters/snapshots", headers=env.auth("officer"))
    assert publish.status_code == 201
    stranger = person(98)  # signs in, but has no credit data
    before = (env.counts()["record"], _access_rows(env))
    auditor = env.auth("auditor")
    ref = env.ref(P1).hex()
    failing = [
        (env.client.get("/v1/credit/me", headers=env.me(stranger)), 404),
        (
            env.client.post(
                "/v1/credit/measures",
                json={"subject": P1, "scenario": "casino", "purpose": "public_service"},
                headers=env.auth("approval"),
            ),
            404,
        ),
        (
            env.client.get(
                "/v1/credit/lists/snapshots/99999999999999999999999/proof",
                params={"subject_ref": ref, "purpose": "list_review"},
                headers=auditor,
            ),
            422,
        ),
        (
            env.client.get(
                "/v1/credit/lists/snapshots/4096/proof",
                params={"subject_ref": ref, "purpose": "list_review"},
                headers=auditor,
            ),
            404,
        ),
        (
            env.client.get(
                f"/v1/credit/subjects/{env.ref(stranger).hex()}",
                params={"purpose": "credit_audit"},
                headers=auditor,
            ),
            404,
        ),
        (
            env.client.post(
                "/v1/credit/replay",
                json={"subject_ref": env.ref(stranger).hex(), "purpose": "credit_audit"},
                headers=auditor,
            ),
            404,
        ),
    ]
    # Reads whose stored rows cannot be served (an event row pointing at another record).
    with env.ledger.store.engine.begin() as conn:
        conn.execute(
            text("UPDATE credit_event SET record_id = (SELECT record_id FROM credit_change LIMIT 1)")
        )
    failing += [
        (env.client.get("/v1/credit/me", headers=env.me(P1)), 503),
        (env.client.get("/v1/credit/me/events", headers=env.me(P1)), 503),
        (
            env.client.get("/v1/credit/subjects/" + ref, params={"purpose": "credit_audit"}, headers=auditor),
            503,
        ),
    ]
    for response, status in failing:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith(PROBLEM) and response.json()["reason"]
    assert (env.counts()["record"], _access_rows(env)) == before
