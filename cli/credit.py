"""``trustledger credit …`` and ``trustledger dev-idp …``: the credit engine's CLI (a thin shell).

Exit codes: 0 done (replay: clean), 1 replay found differences, 2 bad input, 3 other errors.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from api.credit_responses import (
    JobReportOut,
    PublishedSnapshotOut,
    RulebookVersionOut,
    ScoreOnDateOut,
    ScoreOut,
)
from credit.errors import CreditError
from credit.rulebook import load_rulebook
from credit.service import CreditService
from ledger.settings import Settings

Command = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


def _open(settings: Settings, *, today: date | None = None, rulebook: bool = False) -> CreditService:
    """The credit service; with ``rulebook``, a rulebook in force (the shipped default if none is)."""
    from credit.setup import open_credit
    from ledger.service import open_ledger

    service = open_credit(open_ledger(settings), settings, today=(lambda: today) if today else None)
    if rulebook:
        service.ensure_rulebook()
    return service


def _ref(service: CreditService, text: str) -> bytes:
    """A subject by keyed reference (64 hex digits) or by identifier."""
    try:
        ref = bytes.fromhex(text)
        if len(ref) == 32:
            return ref
    except ValueError:
        pass
    return service.subject_ref(text)[0]


def _emit(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Recompute scores from the ledger's records and compare with what is stored."""
    service = _open(settings)
    if args.all == (args.subject is not None):
        raise CreditError("give a subject or --all", reason="usage")
    if args.all:
        report = service.replay_all()
    else:
        ref = _ref(service, args.subject)
        report = service.replay(ref)
        # A subject's replay reads its data (and may have turned an ID into its reference): an access.
        service.log_access(ref, accessor=args.by, role="operator", purpose="credit_audit", what="replay")
    print(f"subjects: {report.subjects}  events: {report.events}  score changes recomputed: {report.changes}")
    for problem in report.problems:
        print(f"DIFFERENCE: {problem}")
    print("replay: clean" if report.clean else f"replay: {len(report.problems)} difference(s)")
    return 0 if report.clean else 1


def cmd_rulebook(args: argparse.Namespace, settings: Settings) -> int:
    """Validate, activate or show rulebooks."""
    if args.action == "validate":
        rulebook = load_rulebook(Path(args.file))
        print(f"valid: version {rulebook.version}, sm3 {rulebook.canonical_hash().hex()}")
        return 0
    service = _open(settings)
    if args.action == "activate":
        rulebook = load_rulebook(Path(args.file))
        report = service.activate_rulebook(rulebook, by=args.by, workers=args.workers)
        print(f"activated {rulebook.version} (sm3 {rulebook.canonical_hash().hex()})")
        print(f"recomputed {report.recomputed} subjects, {report.changed} score changes recorded")
        return 0
    if args.version:
        print(service.rulebook(args.version).canonical_json().decode())
    else:
        _emit(
            [
                RulebookVersionOut.model_validate(v).model_dump(mode="json")
                for v in service.rulebook_versions()
            ]
        )
    return 0


def cmd_jobs(args: argparse.Namespace, settings: Settings) -> int:
    """Run the daily jobs now (optionally as of another date)."""
    day = date.fromisoformat(args.date) if args.date else None
    report = _open(settings, today=day, rulebook=True).run_daily()
    _emit(JobReportOut.model_validate(report).model_dump(mode="json"))
    return 0


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    """Publish a list snapshot (a ledger record of its Merkle root)."""
    snapshot = _open(settings, rulebook=True).publish_list_snapshot(args.list, by=args.by)
    _emit(PublishedSnapshotOut.model_validate(snapshot).model_dump(mode="json"))
    return 0


def cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    """Crypto-shred a subject's personal data; proofs stay valid."""
    service = _open(settings)
    ref = _ref(service, args.subject)
    service.erase_personal_data(ref, by=args.by)
    print(f"erased the personal data of subject {ref.hex()}")
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    """A subject's current assessment, or with ``--on`` its score on a past day recomputed beside the
    score recorded then (the read is logged for the subject)."""
    service = _open(settings, rulebook=True)
    service.check_purpose(args.purpose, "operator", args.note)  # before anything is read
    ref = _ref(service, args.subject)
    if args.on is not None:
        on = service.score_on(ref, args.on)
        view = ScoreOnDateOut.of(ref, on, service.explain(on.assessment)).model_dump(mode="json")
        what = "score-on-date"
    else:
        view = ScoreOut.of(ref.hex(), service.explain(service.assess(ref))).model_dump(mode="json")
        what = "score"
    service.log_access(
        ref, accessor=args.by, role="operator", purpose=args.purpose, what=what, note=args.note
    )
    _emit(view)
    return 0


def cmd_dev_idp(args: argparse.Namespace, _settings: Settings) -> int:
    """Run the local development identity provider, or print a token from it."""
    from devidp import LocalIdentityProvider, create_idp_app

    key_path = Path(args.data_dir or "var") / "dev-idp-keys.json"
    if args.action == "token":
        provider = LocalIdentityProvider(args.issuer, key_path=key_path)
        print(provider.issue_token(args.identifier, name=args.name, audience=args.audience))
        return 0
    import uvicorn

    provider = LocalIdentityProvider(args.issuer or f"http://127.0.0.1:{args.port}", key_path=key_path)
    uvicorn.run(create_idp_app(provider), host="127.0.0.1", port=args.port, log_level="warning")
    return 0


def add_credit_commands(
    sub: Any,
    settings_of: Callable[[argparse.Namespace], Settings],
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``credit`` and ``dev-idp`` to the top-level subparsers."""

    def bind(handler: Callable[[argparse.Namespace, Settings], int]) -> Callable[[argparse.Namespace], int]:
        return lambda args: handler(args, settings_of(args))

    credit = sub.add_parser("credit", help="the credit engine", description="the credit engine")
    csub = credit.add_subparsers(dest="credit_command", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace, Settings], int], text: str) -> Any:
        p = csub.add_parser(name, help=text, description=text)
        p.set_defaults(handler=bind(handler))
        common(p)
        return p

    replay = command("replay", cmd_replay, "recompute scores from the ledger and report differences")
    replay.add_argument("subject", nargs="?", help="identifier or 64-hex subject reference")
    replay.add_argument("--all", action="store_true", help="every subject, scanning the ledger")
    replay.add_argument("--by", default="operator", help="who replays a subject (shown to the subject)")
    rulebook = command("rulebook", cmd_rulebook, "validate, activate or show rulebooks")
    rulebook.add_argument("action", choices=["validate", "activate", "show"])
    rulebook.add_argument("file", nargs="?", help="rulebook TOML (validate, activate)")
    rulebook.add_argument("--version", help="show: this version's canonical JSON")
    rulebook.add_argument("--by", default="operator", help="activate: who activates it")
    rulebook.add_argument("--workers", type=int, default=2, help="activate: processes for the recompute")
    jobs = command("jobs", cmd_jobs, "run the daily jobs now (expiries, deadlines, red-list review)")
    jobs.add_argument("--date", help="as of this date (YYYY-MM-DD), for catch-up runs")
    publish = command("publish", cmd_publish, "publish a list snapshot (red or a black list key)")
    publish.add_argument("list")
    publish.add_argument("--by", required=True, help="who publishes")
    erase = command("erase", cmd_erase, "crypto-shred a subject's personal data")
    erase.add_argument("subject")
    erase.add_argument("--by", required=True)
    show = command("show", cmd_show, "a subject's score, lists and reasons (logged as an access)")
    show.add_argument("subject")
    show.add_argument("--by", required=True, help="who reads")
    show.add_argument(
        "--purpose", required=True, help="why: a code of the purpose catalogue (shown to the subject)"
    )
    show.add_argument("--note", help="a short note on the purpose (shown to the subject)")
    show.add_argument(
        "--on",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="the score on this past day (recomputed, and as recorded then)",
    )

    idp = sub.add_parser("dev-idp", help="local OpenID provider for development and tests only")
    idp.set_defaults(handler=bind(cmd_dev_idp))
    idp.add_argument("action", choices=["serve", "token"])
    idp.add_argument("identifier", nargs="?", help="token: the resident ID or credit code to sign in as")
    idp.add_argument("--name")
    idp.add_argument("--port", type=int, default=8900)
    idp.add_argument("--issuer", default="http://127.0.0.1:8900")
    idp.add_argument("--audience", default="trustledger-api")
    idp.add_argument("--data-dir")


def role_argument(text: str) -> str:
    """An add-client role: notarizer, auditor, approval, officer, admin or source:<source role>."""
    plain = ("notarizer", "auditor", "approval", "officer", "admin")
    kind, _, source_role = text.partition(":")
    if text in plain or (kind == "source" and source_role.isidentifier() and source_role.islower()):
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r}: use one of {', '.join(plain)} or source:<role> (e.g. source:court)"
    )
