"""Secrets and files at rest: sealed key files under a KEK outside the data dir, 0600 databases."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from credit.setup import master_key
from ledger.core.crypto import Sm2PrivateKey
from ledger.errors import ConfigurationError
from ledger.keyfiles import (
    ENVELOPE_FORMAT,
    Kek,
    KeyFiles,
    KeyPurpose,
    envelope_of,
    open_envelope,
    parse_kek,
    seal_envelope,
)
from ledger.keys import load_log_key, load_secret
from ledger.service import init_deployment, open_ledger
from ledger.settings import Settings
from ledger.store import make_engine

KEK_HEX = "8f1c2e7a9b3d4c5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6"
OTHER_KEK_HEX = "0123456789abcdeffedcba98765432100123456789abcdeffedcba9876543210"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which a plain open() makes world-readable files."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def deployment(tmp_path: Path, umask_022: None) -> Settings:
    """An initialised development deployment (no chain: fast)."""
    settings = Settings(data_dir=tmp_path / "var", chain_backend="none")
    init_deployment(settings)
    master_key(settings, create=True)
    return settings


def flip_base64(text: str) -> str:
    """``text`` with its first character changed to another base64 character."""
    return ("B" if text[0] == "A" else "A") + text[1:]


def kek() -> Kek:
    return Kek.from_material(bytes.fromhex(KEK_HEX), source="test")


# --- the envelope -------------------------------------------------------------------------------


def test_envelope_round_trip_and_documented_fields() -> None:
    sealed = seal_envelope(kek(), KeyPurpose.SUBJECT_SECRET, b"00ff\n")
    document = json.loads(sealed)
    assert document["format"] == ENVELOPE_FORMAT and document["version"] == 1
    assert document["purpose"] == "subject-secret" and document["alg"] == "sm4-gcm"
    assert document["kek_id"] == kek().kek_id and len(bytes.fromhex(document["nonce"])) == 12
    assert b"00ff" not in sealed
    assert open_envelope(kek(), KeyPurpose.SUBJECT_SECRET, document, where="t") == b"00ff\n"
    again = json.loads(seal_envelope(kek(), KeyPurpose.SUBJECT_SECRET, b"00ff\n"))
    assert again["nonce"] != document["nonce"]  # a fresh nonce every time


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.update(purpose="log-key"),  # relabelled for another use: AAD binds the purpose
        lambda d: d.update(ciphertext=flip_base64(d["ciphertext"])),
        lambda d: d.update(nonce="00" * 12),
        lambda d: d.update(public_key="ab" * 64),  # the clear public key is bound too
    ],
)
def test_an_altered_envelope_does_not_open(edit: object) -> None:
    document = json.loads(seal_envelope(kek(), KeyPurpose.SUBJECT_SECRET, b"secret\n", public_key="cd" * 64))
    edit(document)  # type: ignore[operator]
    purpose = KeyPurpose(document["purpose"])
    with pytest.raises(ConfigurationError, match="does not authenticate"):
        open_envelope(kek(), purpose, document, where="t")


def test_wrong_kek_or_purpose_is_refused_by_name() -> None:
    document = json.loads(seal_envelope(kek(), KeyPurpose.CREDIT_MASTER, b"x"))
    other = Kek.from_material(bytes.fromhex(OTHER_KEK_HEX), source="other")
    with pytest.raises(ConfigurationError, match="sealed under KEK"):
        open_envelope(other, KeyPurpose.CREDIT_MASTER, document, where="t")
    with pytest.raises(ConfigurationError, match="not a 'log-key' one"):
        open_envelope(kek(), KeyPurpose.LOG_KEY, document, where="t")
    with pytest.raises(ConfigurationError, match="no KEK is configured"):
        open_envelope(None, KeyPurpose.CREDIT_MASTER, document, where="t")


@pytest.mark.parametrize("value", ["", "changeme", "00" * 16, "ab" * 8, "zz" * 16, "0" * 63, "a1" * 65])
def test_malformed_and_placeholder_keks_are_refused(value: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_kek(value, where="kek")


# --- settings -----------------------------------------------------------------------------------


def test_production_needs_a_kek_outside_the_data_dir(tmp_path: Path) -> None:
    production = {"environment": "production", "log_origin": "credit.city.gov.cn/log", "data_dir": tmp_path}
    with pytest.raises(ValueError, match="key-encryption key"):
        Settings(**production)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="placeholder"):
        Settings(**production, kek="changeme")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="inside the data dir"):
        Settings(**production, kek_file=tmp_path / "kek")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        Settings(**production, kek=KEK_HEX, kek_file=tmp_path.parent / "kek")  # type: ignore[arg-type]
    assert Settings(**production, kek=KEK_HEX).kek is not None  # type: ignore[arg-type]


def test_kek_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    path.write_text(KEK_HEX + "\n")
    os.chmod(path, 0o644)
    with pytest.raises(ConfigurationError, match="readable by others"):
        KeyFiles.for_settings(Settings(data_dir=tmp_path / "var", kek_file=path))
    os.chmod(path, 0o600)
    assert KeyFiles.for_settings(Settings(data_dir=tmp_path / "var", kek_file=path)).kek == Kek.from_material(
        bytes.fromhex(KEK_HEX), source=str(path)
    )


# --- a deployment's files -----------------------------------------------------------------------


def test_every_key_file_is_sealed_and_private(deployment: Settings) -> None:
    files = KeyFiles.for_settings(deployment)
    assert files.kek is not None
    key = load_log_key(deployment.log_key_path, files)
    for path, purpose, plaintext in [
        (deployment.log_key_path, KeyPurpose.LOG_KEY, key.to_hex().encode()),
        (
            deployment.subject_secret_path,
            KeyPurpose.SUBJECT_SECRET,
            load_secret(deployment.subject_secret_path, files, KeyPurpose.SUBJECT_SECRET).hex().encode(),
        ),
        (
            deployment.credit_key_path,
            KeyPurpose.CREDIT_MASTER,
            load_secret(deployment.credit_key_path, files, KeyPurpose.CREDIT_MASTER).hex().encode(),
        ),
    ]:
        raw = path.read_bytes()
        document = envelope_of(raw)
        assert document is not None and document["purpose"] == purpose.value, path
        assert plaintext not in raw, f"{path} holds its secret in clear"
        assert mode(path) == 0o600, path
    # The KEK is not in the data dir, and not readable by others.
    kek_path = deployment.development_kek_path
    assert kek_path.exists() and not kek_path.resolve().is_relative_to(deployment.data_dir.resolve())
    assert mode(kek_path) == 0o600
    assert not any(p.name.endswith(".tmp") for p in deployment.data_dir.iterdir())


def test_a_copy_of_the_data_dir_alone_opens_nothing(deployment: Settings, tmp_path: Path) -> None:
    stolen = tmp_path / "elsewhere" / "var"
    shutil.copytree(deployment.data_dir, stolen)
    with pytest.raises(ConfigurationError, match="no KEK is configured"):
        open_ledger(Settings(data_dir=stolen, chain_backend="none"))
    with pytest.raises(ConfigurationError, match="sealed under KEK"):
        open_ledger(Settings(data_dir=stolen, chain_backend="none", kek=OTHER_KEK_HEX))


def test_a_subject_secret_file_is_not_accepted_as_the_log_key(deployment: Settings) -> None:
    original = deployment.log_key_path.read_bytes()
    shutil.copyfile(deployment.subject_secret_path, deployment.log_key_path)
    with pytest.raises(ConfigurationError, match="not a 'log-key' one"):
        open_ledger(deployment)
    document = json.loads(deployment.log_key_path.read_bytes())
    document["purpose"] = "log-key"  # relabelled: the tag binds the purpose
    deployment.log_key_path.write_text(json.dumps(document))
    with pytest.raises(ConfigurationError, match="does not authenticate"):
        open_ledger(deployment)
    deployment.log_key_path.write_bytes(original)
    open_ledger(deployment).store.engine.dispose()


def test_database_files_are_private(deployment: Settings, umask_022: None) -> None:
    db = deployment.data_dir / "trustledger.db"
    engine = make_engine(deployment.resolved_database_url)
    try:
        with engine.begin() as conn:  # a write with the connection kept open: -wal and -shm exist
            conn.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        with engine.connect() as conn:
            conn.execute(text("SELECT * FROM t")).all()
            wal, shm = db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")
            assert wal.exists() and shm.exists()
            assert (mode(db), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
    finally:
        engine.dispose()
    fresh = deployment.data_dir / "other.db"
    make_engine(f"sqlite:///{fresh}").dispose()
    assert mode(fresh) == 0o600
    os.chmod(fresh, 0o644)  # an older deployment's world-readable database is narrowed on open
    make_engine(f"sqlite:///{fresh}").dispose()
    assert mode(fresh) == 0o600


def test_embedded_chain_state_is_private(tmp_path: Path, umask_022: None) -> None:
    from ledger.chain.embedded import open_embedded_chain

    path = tmp_path / "embedded-chain.db"
    chain = open_embedded_chain(path)
    try:
        assert chain.w3.eth.block_number >= 0
        for candidate in (path, Path(f"{path}.lock"), path.with_name(path.name + "-wal")):
            if candidate.exists():
                assert mode(candidate) == 0o600, candidate
    finally:
        chain.close()
    assert mode(path) == 0o600


# --- older deployments: plain-text files --------------------------------------------------------


def write_plain_deployment(data_dir: Path) -> tuple[Sm2PrivateKey, bytes, bytes]:
    """Key files as versions before sealing wrote them (plain text, 0600) and a 0644 database."""
    data_dir.mkdir(parents=True)
    key = Sm2PrivateKey.generate()
    document = {
        "type": "trustledger-log-key",
        "alg": "sm2-sm3",
        "private_key": key.to_hex(),
        "public_key": key.public_key().hex(),
    }
    secret, master = os.urandom(32), os.urandom(32)
    for name, content in [
        ("log-key.json", json.dumps(document, indent=2) + "\n"),
        ("subject-secret.key", secret.hex() + "\n"),
        ("credit-master.key", master.hex() + "\n"),
        ("chain-key.password", "hunter2-but-longer\n"),
    ]:
        fd = os.open(data_dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
    (data_dir / "chain.json").write_text(
        json.dumps(
            {
                "backend": "rpc",
                "chain_id": 31337,
                "registry_address": "0x" + "11" * 20,
                "rpc_urls": ["http://127.0.0.1:9"],
                "keystore_path": "chain-key.json",
                "keystore_password_file": "chain-key.password",
            }
        )
    )
    (data_dir / "trustledger.db").touch(mode=0o644)
    os.chmod(data_dir / "trustledger.db", 0o644)
    return key, secret, master


def test_init_seals_an_older_deployments_plain_files_in_place(tmp_path: Path, umask_022: None) -> None:
    data_dir = tmp_path / "var"
    key, secret, master = write_plain_deployment(data_dir)
    settings = Settings(data_dir=data_dir)
    # Development still reads them (with a warning) until init seals them.
    ledger = open_ledger(settings, create_schema=True)
    assert ledger.public_key == key.public_key()
    ledger.store.engine.dispose()

    result = init_deployment(settings)
    names = {p.name for p in result.sealed}
    assert names == {"log-key.json", "subject-secret.key", "credit-master.key", "chain-key.password"}
    files = KeyFiles.for_settings(settings)
    for name in names:
        raw = (data_dir / name).read_bytes()
        assert envelope_of(raw) is not None and mode(data_dir / name) == 0o600, name
    assert key.to_hex().encode() not in (data_dir / "log-key.json").read_bytes()
    assert b"hunter2" not in (data_dir / "chain-key.password").read_bytes()
    # The same secrets, now sealed: the log key, subject references and the credit master key survive.
    assert load_log_key(settings.log_key_path, files) == key
    assert load_secret(settings.subject_secret_path, files, KeyPurpose.SUBJECT_SECRET) == secret
    assert load_secret(settings.credit_key_path, files, KeyPurpose.CREDIT_MASTER) == master
    password = files.read(data_dir / "chain-key.password", KeyPurpose.CHAIN_KEY_PASSWORD)
    assert password == b"hunter2-but-longer\n"
    assert result.public_key == key.public_key()
    assert mode(data_dir / "trustledger.db") == 0o600
    assert not any(p.name.endswith(".tmp") for p in data_dir.iterdir())
    assert init_deployment(settings).sealed == ()  # idempotent


def test_plain_text_key_files_are_refused_outside_development(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    key, _, _ = write_plain_deployment(data_dir)
    production = Settings(
        data_dir=data_dir,
        environment="production",  # type: ignore[arg-type]
        log_origin="credit.city.gov.cn/log",
        kek=KEK_HEX,  # type: ignore[arg-type]
        chain_backend="none",  # type: ignore[arg-type]
    )
    with pytest.raises(ConfigurationError, match="plain-text key file"):
        open_ledger(production, create_schema=True)
    init_deployment(production)  # seals them under the production KEK
    ledger = open_ledger(production)
    assert ledger.public_key == key.public_key()
    ledger.store.engine.dispose()
    assert len(master_key(production)) == 16
