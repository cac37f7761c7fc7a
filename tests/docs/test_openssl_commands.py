"""docs/formats.md's OpenSSL commands, run as written, agree with trustledger's implementation.

A third party must be able to verify and seal records from the docs alone. Every fenced block
marked ``sh tested`` in docs/formats.md is run, in order, by ``sh`` in a scratch directory (with
``photo.jpg`` as the document), and its outputs are checked against the Python code: the key id,
the public key hex, the content hashes, the seal message, and a record sealed by OpenSSL that the
ledger accepts and whose receipt verifies. The same blocks without ``-pkeyopt distid:…`` (OpenSSL's
default, an empty SM2 user ID) must produce a seal the ledger refuses.

Skipped only where ``openssl`` is missing or lacks SM2/SM3 (the reason says which); under CI=true
that is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from api.models import RecordIn
from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey, Sm2PublicKey, digest_function, new_hash
from ledger.core.leaf import RecordKind, canonical_json, canonical_metadata, seal_message
from ledger.core.receipt import verify_receipt
from ledger.errors import InvalidSignature
from ledger.log import Ledger
from ledger.store import LogStore, make_engine

DOC = Path(__file__).parents[2] / "docs" / "formats.md"
_BLOCK = re.compile(r"^```sh tested\n(.*?)^```$", re.S | re.M)
_DISTID = re.compile(r"[ \t]*-pkeyopt distid:1234567812345678")


def _openssl_lacks_sm2(scratch: Path) -> str | None:
    """Why this machine's openssl cannot run the documented commands (None when it can)."""
    if shutil.which("openssl") is None:
        return "no openssl command on PATH"
    probe = subprocess.run(
        "openssl genpkey -algorithm SM2 -out probe.pem && printf x | openssl dgst -sm3",
        shell=True,
        cwd=scratch,
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        version = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=False)
        return f"{version.stdout.strip()} cannot make SM2 keys or SM3 hashes: {probe.stderr.strip()[:200]}"
    return None


@pytest.fixture
def openssl(tmp_path: Path) -> None:
    reason = _openssl_lacks_sm2(tmp_path)
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} — CI must run the documented OpenSSL commands")
        pytest.skip(reason)


def _documented_script() -> str:
    blocks = _BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 5, "docs/formats.md lost its tested OpenSSL blocks"
    return "\n".join(blocks)


def _run(script: str, workdir: Path) -> None:
    workdir.mkdir()
    (workdir / "photo.jpg").write_bytes(os.urandom(3000))
    done = subprocess.run(
        ["sh", "-eu", "-c", script], cwd=workdir, capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, f"documented commands failed:\n{done.stderr}"


def _ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger(
        LogStore(make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")),
        origin="docs.trustledger.local/log",
        hash_alg=HashAlgorithm.SM3,
        signing_key=Sm2PrivateKey.generate(),
        subject_secret=b"s" * 32,
    )
    ledger.create_schema()
    return ledger


def _submit(ledger: Ledger, out: Path) -> str:
    """Register the OpenSSL key for system "court" and submit record.json as that system."""
    public = Sm2PublicKey.from_hex((out / "seal-key.hex").read_text())
    ledger.store.add_seal_key(public.key_id(), "court", public.hex(), 0)
    record = RecordIn.model_validate_json((out / "record.json").read_bytes())
    (accepted,) = ledger.submit("court", [record.to_submission(ledger)])
    return accepted.id


def test_documented_openssl_commands_agree_with_trustledger(openssl: None, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(_documented_script(), out)
    names = ("seal-key.hex", "seal-key.id", "photo.sm3", "content.sm3")
    text = {name: (out / name).read_text(encoding="ascii").strip() for name in names}

    public = Sm2PublicKey.from_pem((out / "seal-key.pub.pem").read_text())
    assert text["seal-key.hex"] == public.hex()
    assert text["seal-key.id"] == public.key_id()

    photo = new_hash(HashAlgorithm.SM3)  # as /v1/records/upload hashes the stream
    photo.update((out / "photo.jpg").read_bytes())
    assert text["photo.sm3"] == photo.digest().hex()

    jcs = (out / "content.jcs").read_bytes()
    content = json.loads(jcs)
    assert canonical_json(content) == jcs  # the documented text really is RFC 8785
    content_hash = digest_function(HashAlgorithm.SM3)(canonical_json(content))
    assert text["content.sm3"] == content_hash.hex()

    metadata = json.loads((out / "metadata.jcs").read_bytes())
    expected = seal_message(
        RecordKind.CERTIFICATE, HashAlgorithm.SM3, content_hash, canonical_metadata(metadata)
    )
    assert (out / "seal-message.bin").read_bytes() == expected

    ledger = _ledger(tmp_path)
    record_id = _submit(ledger, out)  # the intake verifies the seal: a refused one raises here
    ledger.sequence_all()
    ledger.issue_checkpoint()
    result = verify_receipt(ledger.receipt(record_id), trusted_key=ledger.public_key)
    assert "seal" in result.steps and result.sealed_by == public.key_id()
    assert ledger.receipt(record_id).record.content_hash.hex == content_hash.hex()


def test_a_seal_made_with_openssls_default_id_is_refused(openssl: None, tmp_path: Path) -> None:
    script = _documented_script()
    without_id, removed = _DISTID.subn("", script)
    assert removed == 1, "the documented seal command must pass -pkeyopt distid:1234567812345678"
    out = tmp_path / "run"
    _run(without_id, out)
    ledger = _ledger(tmp_path)
    with pytest.raises(InvalidSignature) as refused:
        _submit(ledger, out)
    assert refused.value.reason == "invalid-seal"
    assert ledger.store.pending_count() == 0
