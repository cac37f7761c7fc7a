"""Tests for ledger.core.crypto: SM3 / HMAC-SM3 / SM2 against published vectors and each other.

Independent references used here: the GB/T 32905 and GB/T 32918 / GM/T 0003 known-answer vectors
(tests/vectors/*.json), an affine SM2 implementation written in this file, the ``gmssl`` package's
own SM3 and point arithmetic, the C GmSSL binding ``gmssl_pyx``, and the ``openssl`` CLI.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import shutil
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import gmssl_pyx
import pytest
from gmssl import sm3 as gmssl_sm3
from gmssl.sm2 import CryptSM2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.core import crypto
from ledger.core.crypto import (
    DEFAULT_SIGNER_ID,
    SM2_N,
    HashAlgorithm,
    HashBackend,
    Sm2Backend,
    Sm2PrivateKey,
    Sm2PublicKey,
    der_to_rs,
    digest_function,
    hmac_sm3,
    new_hash,
    rs_to_der,
    sm2_backend,
    sm2_verify,
    subject_ref,
)
from ledger.errors import ConfigurationError, InvalidRequest

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
SM3_VECTORS: list[dict[str, str]] = json.loads((VECTORS / "sm3.json").read_text())["vectors"]
SM2_VECTORS: dict[str, dict[str, Any]] = {
    v["name"]: v for v in json.loads((VECTORS / "sm2.json").read_text())["vectors"]
}

SM3_BACKENDS: list[HashBackend] = ["auto", "openssl", "gmssl-pyx", "gmssl", "pure"]
SM2_BACKENDS: list[Sm2Backend] = ["gmssl-pyx", "gmssl"]
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def gmssl_sm3_ref(data: bytes) -> bytes:
    """SM3 by the gmssl package, called directly (independent of ledger.core.crypto)."""
    return bytes.fromhex(gmssl_sm3.sm3_hash(list(data)))


def h(value: str) -> int:
    return int(value, 16)


def b32(value: int) -> bytes:
    return value.to_bytes(32, "big")


# ---------------------------------------------------------------------------------------------
# SM3
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", SM3_BACKENDS)
@pytest.mark.parametrize("vector", SM3_VECTORS, ids=lambda v: v["message_hex"][:8] or "empty")
def test_sm3_golden_vectors_every_backend(vector: dict[str, str], backend: Any) -> None:
    message = bytes.fromhex(vector["message_hex"])
    assert digest_function(HashAlgorithm.SM3, backend=backend)(message).hex() == vector["digest"]


@pytest.mark.parametrize("backend", ["auto", "openssl", "pure"])
@pytest.mark.parametrize("vector", SM3_VECTORS, ids=lambda v: v["message_hex"][:8] or "empty")
def test_sm3_golden_vectors_incremental_random_chunks(vector: dict[str, str], backend: Any) -> None:
    message = bytes.fromhex(vector["message_hex"])
    rng = random.Random(32905)
    for _ in range(20):
        hasher = new_hash(HashAlgorithm.SM3, backend=backend)
        pos = 0
        while pos < len(message):
            step = rng.randint(0, 70)
            hasher.update(message[pos : pos + step])
            pos += step
        assert hasher.hexdigest() == vector["digest"]
        assert hasher.digest() == bytes.fromhex(vector["digest"])


def test_sm3_gb_t_32905_examples_literal() -> None:
    # The two examples of GB/T 32905-2016 Appendix A, spelled out once without the JSON file.
    sm3 = digest_function(HashAlgorithm.SM3)
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm3(b"abcd" * 16).hex() == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"


@FAST
@given(data=st.binary(max_size=300))
def test_sm3_all_backends_agree(data: bytes) -> None:
    expected = gmssl_sm3_ref(data)
    for backend in SM3_BACKENDS:
        assert digest_function(HashAlgorithm.SM3, backend=backend)(data) == expected, backend
    assert gmssl_pyx.sm3_hash(data) == expected


@FAST
@given(data=st.binary(max_size=700), cuts=st.lists(st.integers(min_value=0, max_value=700), max_size=12))
def test_sm3_incremental_equals_one_shot(data: bytes, cuts: list[int]) -> None:
    expected = digest_function(HashAlgorithm.SM3, backend="openssl")(data)
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    for backend in ("pure", "openssl"):
        hasher = new_hash(HashAlgorithm.SM3, backend=backend)
        for start, end in zip(bounds, bounds[1:], strict=False):
            hasher.update(data[start:end])
        assert hasher.digest() == expected, backend
    assert digest_function(HashAlgorithm.SM3, backend="pure")(data) == expected


def test_pure_sm3_digest_does_not_finalise_and_accepts_buffers() -> None:
    hasher = new_hash(HashAlgorithm.SM3, backend="pure")
    hasher.update(b"ab")
    first = hasher.digest()
    hasher.update(bytearray(b"c"))  # type: ignore[arg-type]
    hasher.update(memoryview(b""))  # type: ignore[arg-type]
    assert first == hashlib.new("sm3", b"ab").digest()
    assert hasher.hexdigest() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_pure_sm3_streams_without_buffering() -> None:
    hasher = new_hash(HashAlgorithm.SM3, backend="pure")
    chunk = bytes(range(256)) * 4 + b"xyz"
    for _ in range(8):
        hasher.update(chunk)
        assert len(hasher._tail) < 64  # type: ignore[attr-defined]
    assert hasher.digest() == hashlib.new("sm3", chunk * 8).digest()


def test_sha256() -> None:
    assert digest_function(HashAlgorithm.SHA256)(b"abc") == hashlib.sha256(b"abc").digest()
    assert digest_function("sha256")(b"") == hashlib.sha256().digest()  # type: ignore[arg-type]
    hasher = new_hash(HashAlgorithm.SHA256)
    hasher.update(b"ab")
    hasher.update(b"c")
    assert hasher.digest() == hashlib.sha256(b"abc").digest()
    with pytest.raises(ConfigurationError):
        digest_function(HashAlgorithm.SHA256, backend="gmssl")
    with pytest.raises(ConfigurationError):
        new_hash(HashAlgorithm.SHA256, backend="pure")


def test_openssl_sm3_is_detected_here() -> None:
    # This machine's OpenSSL 3 has SM3; the fast path must actually be in use.
    assert crypto.sm3_available_in_openssl()
    assert crypto._auto_sm3_backend() == "openssl"


@pytest.fixture
def no_openssl_sm3(monkeypatch: pytest.MonkeyPatch) -> Any:
    crypto._digest_function.cache_clear()
    monkeypatch.setattr(crypto, "sm3_available_in_openssl", lambda: False)
    yield
    crypto._digest_function.cache_clear()


def test_fallbacks_without_openssl_sm3(no_openssl_sm3: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert crypto._auto_sm3_backend() == "gmssl-pyx"
    with pytest.raises(ConfigurationError):
        digest_function(HashAlgorithm.SM3, backend="openssl")
    with pytest.raises(ConfigurationError):
        new_hash(HashAlgorithm.SM3, backend="openssl")
    with pytest.raises(ConfigurationError):
        hmac_sm3(b"k", b"m", backend="openssl")
    assert digest_function(HashAlgorithm.SM3)(b"abc").hex().startswith("66c7f0f4")
    assert isinstance(new_hash(HashAlgorithm.SM3), crypto._PureSm3)
    crypto._digest_function.cache_clear()
    monkeypatch.setattr(crypto, "_pyx", None)
    assert crypto._auto_sm3_backend() == "pure"
    assert digest_function(HashAlgorithm.SM3)(b"abc").hex().startswith("66c7f0f4")
    assert hmac_sm3(b"key", b"abc") == gmssl_pyx.sm3_hmac(b"key", b"abc")
    with pytest.raises(ConfigurationError):
        digest_function(HashAlgorithm.SM3, backend="gmssl-pyx")


# ---------------------------------------------------------------------------------------------
# HMAC-SM3 and subject references
# ---------------------------------------------------------------------------------------------


def rfc2104_on_gmssl(key: bytes, message: bytes) -> bytes:
    """RFC 2104 written out on gmssl's SM3, independent of the module under test."""
    if len(key) > 64:
        key = gmssl_sm3_ref(key)
    key = key + b"\x00" * (64 - len(key))
    inner = gmssl_sm3_ref(bytes(k ^ 0x36 for k in key) + message)
    return gmssl_sm3_ref(bytes(k ^ 0x5C for k in key) + inner)


@settings(max_examples=25, deadline=None)
@given(key=st.binary(min_size=1, max_size=150), message=st.binary(max_size=200))
def test_hmac_sm3_matches_independent_implementations(key: bytes, message: bytes) -> None:
    expected = rfc2104_on_gmssl(key, message)
    assert gmssl_pyx.sm3_hmac(key, message) == expected
    for backend in ("auto", "openssl", "gmssl-pyx", "pure"):
        assert hmac_sm3(key, message, backend=backend) == expected, backend


def test_hmac_sm3_key_lengths_around_block_size() -> None:
    for size in (1, 31, 32, 63, 64, 65, 128):
        key = bytes(range(size))
        assert hmac_sm3(key, b"msg") == rfc2104_on_gmssl(key, b"msg") == gmssl_pyx.sm3_hmac(key, b"msg")
        assert hmac_sm3(key, b"msg", backend="pure") == gmssl_pyx.sm3_hmac(key, b"msg")


def test_hmac_sm3_rejects_empty_key() -> None:
    with pytest.raises(InvalidRequest):
        hmac_sm3(b"", b"m")


SUBJECT_SECRET = b"0123456789abcdef"


def test_subject_ref_golden_value_is_frozen() -> None:
    # Changing this value breaks every stored subject reference.
    expected = "95f4a080df544e9a9ecd7f246ccdc34f3cc84bfe611da914a84e913183af7234"
    assert subject_ref(SUBJECT_SECRET, "91350100M000100Y43") == expected
    independent = rfc2104_on_gmssl(SUBJECT_SECRET, b"trustledger/subject/v1\x00" + b"91350100M000100Y43")
    assert independent.hex() == expected


def test_subject_ref_canonicalisation() -> None:
    ref = subject_ref(SUBJECT_SECRET, "91350100M000100Y43")
    assert subject_ref(SUBJECT_SECRET, "  91350100m000100y43\n") == ref
    nfd = unicodedata.normalize("NFD", "zhāng sān é")
    nfc = unicodedata.normalize("NFC", "ZHĀNG SĀN É")
    assert nfd != nfc
    assert subject_ref(SUBJECT_SECRET, nfd) == subject_ref(SUBJECT_SECRET, nfc)
    # Upper-casing can yield decomposed text ("ǰ" -> "J" + combining caron): still idempotent.
    once = unicodedata.normalize("NFC", "ǰ".upper())
    assert subject_ref(SUBJECT_SECRET, "ǰ") == subject_ref(SUBJECT_SECRET, once)
    assert subject_ref(SUBJECT_SECRET, "A") != subject_ref(SUBJECT_SECRET, "B")
    assert subject_ref(SUBJECT_SECRET + b"!", "A") != subject_ref(SUBJECT_SECRET, "A")
    assert len(ref) == 64 and int(ref, 16) >= 0


def test_subject_ref_rejects_bad_input() -> None:
    with pytest.raises(InvalidRequest):
        subject_ref(SUBJECT_SECRET, "   ")
    with pytest.raises(ConfigurationError):
        subject_ref(b"short", "A")
    with pytest.raises(InvalidRequest):
        subject_ref(SUBJECT_SECRET, b"A")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# SM2 known-answer tests
# ---------------------------------------------------------------------------------------------


class AffineCurve:
    """Textbook affine short-Weierstrass arithmetic: slow, obvious, independent of gmssl."""

    def __init__(self, c: dict[str, str]) -> None:
        self.p, self.a, self.b, self.n = h(c["p"]), h(c["a"]), h(c["b"]), h(c["n"])
        self.g = (h(c["gx"]), h(c["gy"]))

    def on_curve(self, pt: tuple[int, int]) -> bool:
        x, y = pt
        return (y * y - x * x * x - self.a * x - self.b) % self.p == 0

    def add(self, p1: tuple[int, int] | None, p2: tuple[int, int] | None) -> tuple[int, int] | None:
        if p1 is None:
            return p2
        if p2 is None:
            return p1
        p = self.p
        if p1[0] == p2[0] and (p1[1] + p2[1]) % p == 0:
            return None
        if p1 == p2:
            lam = (3 * p1[0] * p1[0] + self.a) * pow(2 * p1[1], -1, p) % p
        else:
            lam = (p2[1] - p1[1]) * pow(p2[0] - p1[0], -1, p) % p
        x3 = (lam * lam - p1[0] - p2[0]) % p
        return x3, (lam * (p1[0] - x3) - p1[1]) % p

    def mul(self, k: int, pt: tuple[int, int]) -> tuple[int, int]:
        acc: tuple[int, int] | None = None
        for bit in bin(k)[2:]:
            acc = self.add(acc, acc)
            if bit == "1":
                acc = self.add(acc, pt)
        assert acc is not None
        return acc

    def z(self, signer_id: bytes, pub: tuple[int, int]) -> bytes:
        entl = (len(signer_id) * 8).to_bytes(2, "big")
        parts = [self.a, self.b, self.g[0], self.g[1], pub[0], pub[1]]
        return gmssl_sm3_ref(entl + signer_id + b"".join(b32(v) for v in parts))

    def verify(self, pub: tuple[int, int], e: int, r: int, s: int) -> bool:
        t = (r + s) % self.n
        if not (1 <= r < self.n and 1 <= s < self.n) or t == 0:
            return False
        point = self.add(self.mul(s, self.g), self.mul(t, pub))
        return point is not None and (e + point[0]) % self.n == r


@pytest.mark.parametrize("name", ["test-curve", "recommended-curve"])
def test_sm2_kat_independent_affine_math(name: str) -> None:
    v = SM2_VECTORS[name]
    curve = AffineCurve(v["curve"])
    assert curve.on_curve(curve.g)
    d, k = h(v["private_key"]), h(v["k"])
    pub = curve.mul(d, curve.g)
    assert pub == (h(v["public_key_x"]), h(v["public_key_y"]))
    z = curve.z(v["signer_id"].encode(), pub)
    assert z.hex() == v["z"].lower()
    e = int.from_bytes(gmssl_sm3_ref(z + v["message"].encode()), "big")
    assert e == h(v["e"])
    x1, y1 = curve.mul(k, curve.g)
    if "x1" in v:
        assert (x1, y1) == (h(v["x1"]), h(v["y1"]))
    r = (e + x1) % curve.n
    s = pow(1 + d, -1, curve.n) * (k - r * d) % curve.n
    assert (r, s) == (h(v["r"]), h(v["s"]))
    assert curve.verify(pub, e, r, s)
    assert not curve.verify(pub, e + 1, r, s)


@pytest.mark.parametrize("name", ["test-curve", "recommended-curve"])
def test_sm2_kat_gmssl_arithmetic_with_custom_curve_table(name: str) -> None:
    # gmssl's Jacobian code, parameterised by the vector's curve, reproduces the published r, s.
    v = SM2_VECTORS[name]
    c = v["curve"]
    table = {"n": c["n"], "p": c["p"], "g": c["gx"] + c["gy"], "a": c["a"], "b": c["b"]}
    pub_hex = v["public_key_x"] + v["public_key_y"]
    signer = CryptSM2(private_key=v["private_key"], public_key="", ecc_table=table)
    signer.public_key = pub_hex  # see the lstrip("04") note in crypto._gmssl_crypt
    assert signer._kg(h(v["private_key"]), table["g"]).upper() == pub_hex.upper()
    e = bytes.fromhex(v["e"])
    assert signer.sign(e, v["k"]).upper() == (v["r"] + v["s"]).upper()
    assert signer.verify(v["r"] + v["s"], e)


def test_sm2_kat_recommended_curve_production_code() -> None:
    v = SM2_VECTORS["recommended-curve"]
    key = Sm2PrivateKey.from_hex(v["private_key"])
    pub = key.public_key()
    assert pub.hex() == (v["public_key_x"] + v["public_key_y"]).lower()
    signer_id, message = v["signer_id"].encode(), v["message"].encode()
    assert signer_id == DEFAULT_SIGNER_ID
    assert crypto._sm2_z(pub, signer_id).hex() == v["z"].lower()
    assert crypto._sm2_e(pub, message, signer_id).hex() == v["e"].lower()
    expected = rs_to_der(h(v["r"]), h(v["s"]))
    assert crypto._sm2_sign_gmssl(key, message, signer_id, k=h(v["k"])) == expected
    for backend in SM2_BACKENDS:
        assert sm2_verify(pub, message, expected, backend=backend)
        assert not sm2_verify(pub, message + b".", expected, backend=backend)
    assert gmssl_pyx.sm2_verify(pub.raw, message, expected, signer_id=signer_id)
    # gmssl's own Z computation (default ID hard-wired) agrees with ours.
    z_gmssl = crypto._gmssl_crypt("", pub.hex())._sm3_z(message)
    assert z_gmssl == v["e"].lower()


def test_sm2_curve_constants_match_gmssl_and_gmssl_pyx() -> None:
    from gmssl.sm2 import default_ecc_table
    from gmssl_pyx.sm2_utils import g_default_ecc_table

    for table in (default_ecc_table, g_default_ecc_table):
        assert h(table["p"]) == crypto.SM2_P and h(table["a"]) == crypto.SM2_A
        assert h(table["b"]) == crypto.SM2_B and h(table["n"]) == crypto.SM2_N
        assert h(table["g"]) == (crypto.SM2_GX << 256) | crypto.SM2_GY


# ---------------------------------------------------------------------------------------------
# SM2 interoperability and robustness
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key() -> Sm2PrivateKey:
    return Sm2PrivateKey.generate()


def test_default_backend_is_c() -> None:
    assert sm2_backend() == "gmssl-pyx"


@pytest.mark.parametrize("signer_id", [DEFAULT_SIGNER_ID, b"trustledger-node-1", b"\x00\xff" * 40])
@pytest.mark.parametrize("sign_backend", SM2_BACKENDS)
def test_sm2_backends_interoperate(key: Sm2PrivateKey, sign_backend: Any, signer_id: bytes) -> None:
    message = b"checkpoint\n42\n" + bytes(range(200))
    signature = key.sign(message, signer_id, backend=sign_backend)
    assert der_to_rs(signature)  # strict DER
    pub = key.public_key()
    for verify_backend in SM2_BACKENDS:
        assert sm2_verify(pub, message, signature, signer_id, backend=verify_backend)
        assert not sm2_verify(pub, message + b"x", signature, signer_id, backend=verify_backend)
        other_id = signer_id + b"x"
        assert not sm2_verify(pub, message, signature, other_id, backend=verify_backend)
    assert gmssl_pyx.sm2_verify(pub.raw, message, signature, signer_id=signer_id)
    # ...and the plain gmssl API (asn1 mode, default ID) agrees for the default ID.
    if signer_id == DEFAULT_SIGNER_ID:
        plain = CryptSM2(private_key="", public_key="", asn1=True)
        plain.public_key = pub.hex()
        assert plain.verify_with_sm3(signature.hex(), message)


@pytest.mark.parametrize("backend", SM2_BACKENDS)
def test_sm2_tampering_is_detected(key: Sm2PrivateKey, backend: Any) -> None:
    message = b"hello"
    signature = key.sign(message)
    pub = key.public_key()
    assert sm2_verify(pub, message, signature, backend=backend)
    r, s = der_to_rs(signature)
    other = Sm2PrivateKey.generate().public_key()
    assert not sm2_verify(other, message, signature, backend=backend)
    assert not sm2_verify(pub, b"hellO", signature, backend=backend)
    assert not sm2_verify(pub, message, rs_to_der(r, (s + 1) % SM2_N), backend=backend)
    assert not sm2_verify(pub, message, rs_to_der((r + 1) % SM2_N, s), backend=backend)
    flipped = bytearray(signature)
    flipped[-1] ^= 1
    assert not sm2_verify(pub, message, bytes(flipped), backend=backend)


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag, len(content)]) + content


def _int_raw(content: bytes) -> bytes:
    return _tlv(0x02, content)


MALFORMED_SIGNATURES = {
    "empty": b"",
    "one byte": b"\x30",
    "garbage": b"not a signature at all",
    "empty sequence": b"\x30\x00",
    "r=0": rs_to_der(0, 5),
    "s=0": rs_to_der(5, 0),
    "r=n": rs_to_der(SM2_N, 5),
    "s=n": rs_to_der(5, SM2_N),
    "r+s=n": rs_to_der(5, SM2_N - 5),
    "negative r": _tlv(0x30, _int_raw(b"\x85" + b"\x01" * 31) + _int_raw(b"\x05")),
    "three integers": _tlv(0x30, _int_raw(b"\x05") * 3),
    "one integer": _tlv(0x30, _int_raw(b"\x05")),
    "wrong outer tag": _tlv(0x31, _int_raw(b"\x05") * 2),
    "empty integer": _tlv(0x30, _int_raw(b"") + _int_raw(b"\x05")),
    "huge integer": _tlv(0x30, _int_raw(b"\x01" + b"\x00" * 32) + _int_raw(b"\x05")),
    "long-form length": b"\x30\x81\x06" + _int_raw(b"\x05") * 2,
    "indefinite length": b"\x30\x80" + _int_raw(b"\x05") * 2 + b"\x00\x00",
    "length too long": b"\x30\x10" + _int_raw(b"\x05") * 2,
}


@pytest.mark.parametrize("name", sorted(MALFORMED_SIGNATURES))
@pytest.mark.parametrize("backend", SM2_BACKENDS)
def test_sm2_malformed_signature_is_false_not_exception(key: Sm2PrivateKey, backend: Any, name: str) -> None:
    assert sm2_verify(key.public_key(), b"m", MALFORMED_SIGNATURES[name], backend=backend) is False


@pytest.mark.parametrize("backend", SM2_BACKENDS)
def test_sm2_non_strict_encodings_of_a_valid_signature_are_rejected(key: Sm2PrivateKey, backend: Any) -> None:
    signature = key.sign(b"m")
    r, s = der_to_rs(signature)
    # a leading 0x00 before the minimal content is always a non-minimal INTEGER
    non_minimal = _tlv(0x30, _int_raw(b"\x00" + crypto._der_uint(r)) + _int_raw(crypto._der_uint(s)))
    assert crypto.der_to_rs(_tlv(0x30, _int_raw(crypto._der_uint(r)) + _int_raw(crypto._der_uint(s)))) == (
        r,
        s,
    )
    for bad in (signature + b"\x00", non_minimal, signature[:-1], None, 12345):
        assert sm2_verify(key.public_key(), b"m", bad, backend=backend) is False  # type: ignore[arg-type]


def test_der_strictness() -> None:
    assert der_to_rs(rs_to_der(1, 2)) == (1, 2)
    assert rs_to_der(0x80, 0x7F) == bytes.fromhex("300702020080" + "02017f")
    for bad in (
        b"\x30\x06\x02\x01\x01\x02\x01\x02\x00",  # trailing garbage
        b"\x30\x07\x02\x02\x00\x01\x02\x01\x02",  # non-minimal INTEGER
        b"\x30\x07\x02\x01\x01\x02\x02\xff\x80",  # negative INTEGER
        b"\x30\x81\x06\x02\x01\x01\x02\x01\x02",  # non-minimal length
    ):
        with pytest.raises(InvalidRequest):
            der_to_rs(bad)
    for r, s in ((-1, 1), (1, 1 << 256), (True, 1)):
        with pytest.raises(InvalidRequest):
            rs_to_der(r, s)


@settings(max_examples=100, deadline=None)
@given(
    r=st.integers(min_value=0, max_value=(1 << 256) - 1), s=st.integers(min_value=0, max_value=(1 << 256) - 1)
)
def test_der_round_trip(r: int, s: int) -> None:
    der = rs_to_der(r, s)
    assert der_to_rs(der) == (r, s)
    assert len(der) <= 72


def test_signer_id_limits(key: Sm2PrivateKey) -> None:
    for bad in (b"", b"x" * 8192):
        with pytest.raises(InvalidRequest):
            key.sign(b"m", bad)
        with pytest.raises(InvalidRequest):
            sm2_verify(key.public_key(), b"m", b"", bad)
    long_id = b"x" * 8191
    for backend in SM2_BACKENDS:
        signature = key.sign(b"m", long_id, backend=backend)
        assert sm2_verify(key.public_key(), b"m", signature, long_id, backend="gmssl-pyx")


def test_gmssl_backend_uses_secrets_not_random(monkeypatch: pytest.MonkeyPatch, key: Sm2PrivateKey) -> None:
    import gmssl.func
    import gmssl.sm2

    def forbidden(*_: object) -> str:
        raise AssertionError("gmssl's random.choice-based nonce must not be used")

    monkeypatch.setattr(gmssl.func, "random_hex", forbidden)
    monkeypatch.setattr(gmssl.sm2.func, "random_hex", forbidden)
    first = key.sign(b"m", backend="gmssl")
    second = key.sign(b"m", backend="gmssl")
    assert first != second
    assert sm2_verify(key.public_key(), b"m", first)


def test_pure_fallback_when_gmssl_pyx_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "_pyx", None)
    assert sm2_backend() == "gmssl"
    key = Sm2PrivateKey.generate()
    signature = key.sign(b"fallback")
    assert sm2_verify(key.public_key(), b"fallback", signature)
    assert gmssl_pyx.sm2_verify(key.public_key().raw, b"fallback", signature)
    with pytest.raises(ConfigurationError):
        key.sign(b"m", backend="gmssl-pyx")
    with pytest.raises(ConfigurationError):
        sm2_verify(key.public_key(), b"m", signature, backend="gmssl-pyx")


def test_unknown_backend_is_a_configuration_error(key: Sm2PrivateKey) -> None:
    with pytest.raises(ConfigurationError):
        key.sign(b"m", backend="openssl")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        digest_function(HashAlgorithm.SM3, backend="nope")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------

RECOMMENDED = SM2_VECTORS["recommended-curve"]
KAT_PUB_HEX = (RECOMMENDED["public_key_x"] + RECOMMENDED["public_key_y"]).lower()
OPENSSL_SPKI_PREFIX = "MFkwEwYHKoZIzj0CAQYIKoEcz1UBgi0DQgAE"  # what `openssl pkey -pubout` writes


def test_public_key_hex_forms() -> None:
    pub = Sm2PublicKey.from_hex(KAT_PUB_HEX)
    assert Sm2PublicKey.from_hex("04" + KAT_PUB_HEX.upper()) == pub
    assert Sm2PublicKey.from_hex(f"  {KAT_PUB_HEX}\n") == pub
    assert pub.hex() == KAT_PUB_HEX
    for bad in ("05" + KAT_PUB_HEX, KAT_PUB_HEX[:-2], KAT_PUB_HEX + "00", "zz" + KAT_PUB_HEX[2:], ""):
        with pytest.raises(InvalidRequest):
            Sm2PublicKey.from_hex(bad)


def test_public_key_must_be_on_the_curve() -> None:
    raw = bytes.fromhex(KAT_PUB_HEX)
    with pytest.raises(InvalidRequest):
        Sm2PublicKey(raw[:-1] + bytes([raw[-1] ^ 1]))
    with pytest.raises(InvalidRequest):
        Sm2PublicKey(bytes(64))
    with pytest.raises(InvalidRequest):
        Sm2PublicKey(raw[:32])
    # x + p, y + p does not fit in 32 bytes; x, y + p would: it must be rejected as out of range.
    y = int.from_bytes(raw[32:], "big")
    if y + crypto.SM2_P < 1 << 256:
        with pytest.raises(InvalidRequest):
            Sm2PublicKey(raw[:32] + (y + crypto.SM2_P).to_bytes(32, "big"))
    # the negated point is on the curve too and must be accepted
    negated = raw[:32] + (crypto.SM2_P - y).to_bytes(32, "big")
    assert Sm2PublicKey(negated).raw == negated


def test_key_id_is_a_stable_fingerprint() -> None:
    pub = Sm2PublicKey.from_hex(KAT_PUB_HEX)
    assert pub.key_id() == gmssl_sm3_ref(pub.raw)[:16].hex()
    assert len(pub.key_id()) == 32
    assert pub.key_id() in repr(pub)


def test_public_key_pem_round_trip_and_openssl_form(key: Sm2PrivateKey) -> None:
    pub = key.public_key()
    pem = pub.to_pem()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n" + OPENSSL_SPKI_PREFIX)
    assert Sm2PublicKey.from_pem(pem) == pub
    assert Sm2PublicKey.from_pem(pem.encode()) == pub
    assert Sm2PublicKey.from_pem("junk before\n" + pem.replace("\n", "\r\n") + "junk after") == pub
    assert Sm2PublicKey.from_der(pub.to_der()) == pub


def _pem(der: bytes) -> str:
    return "-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der).decode() + "\n-----END PUBLIC KEY-----\n"


def test_public_key_pem_rejects_other_keys(key: Sm2PrivateKey) -> None:
    der = key.public_key().to_der()
    p256 = der.replace(bytes.fromhex("06082a811ccf5501822d"), bytes.fromhex("06082a8648ce3d030107"))
    algorithm = der[2:23]
    assert algorithm[:2] == b"\x30\x13"
    compressed = _tlv(0x30, algorithm + _tlv(0x03, b"\x00" + bytes([2 + (der[-1] & 1)]) + der[-64:-32]))
    for bad in (
        _pem(p256),  # NIST P-256 curve OID
        _pem(compressed),  # compressed point
        _pem(der + b"\x00"),  # trailing garbage
        _pem(der[:-1]),  # truncated
        "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
        _pem(der) + _pem(der),  # two keys
        "no pem here",
    ):
        with pytest.raises(InvalidRequest):
            Sm2PublicKey.from_pem(bad)


def test_private_key_validation_and_repr() -> None:
    key = Sm2PrivateKey.from_hex(RECOMMENDED["private_key"])
    text = repr(key) + str(key) + repr([key]) + f"{key}"
    assert key.to_hex() not in text.lower()
    assert RECOMMENDED["private_key"] not in text
    assert "redacted" in repr(key)
    assert key.to_hex() == RECOMMENDED["private_key"].lower()
    assert Sm2PrivateKey((SM2_N - 2).to_bytes(32, "big")).public_key()  # largest valid d
    for bad in (bytes(32), (SM2_N - 1).to_bytes(32, "big"), SM2_N.to_bytes(32, "big"), b"\x01" * 31):
        with pytest.raises(ConfigurationError):
            Sm2PrivateKey(bad)
    with pytest.raises(ConfigurationError):
        Sm2PrivateKey.from_hex("xyz")
    assert Sm2PrivateKey.from_hex(RECOMMENDED["private_key"]) == key


def test_generated_keys_are_consistent(key: Sm2PrivateKey, monkeypatch: pytest.MonkeyPatch) -> None:
    # the public key GmSSL returned equals the one gmssl's arithmetic derives from d
    assert Sm2PrivateKey(key.raw).public_key() == key.public_key()
    assert Sm2PrivateKey.generate() != key
    monkeypatch.setattr(crypto, "_pyx", None)
    pure = Sm2PrivateKey.generate()
    assert 1 <= int.from_bytes(pure.raw, "big") <= SM2_N - 2
    assert pure.sign(b"m", backend="gmssl")


# ---------------------------------------------------------------------------------------------
# OpenSSL CLI interoperability
# ---------------------------------------------------------------------------------------------


def _openssl_sm2_support() -> str | None:
    """None if the openssl CLI can do SM2 signatures, else the reason it cannot."""
    exe = shutil.which("openssl")
    if exe is None:
        return "no openssl executable on PATH"
    listing = subprocess.run(
        [exe, "list", "-public-key-algorithms"], capture_output=True, text=True, check=False
    )
    if "sm2" not in listing.stdout.lower():
        return "this openssl CLI was built without SM2"
    return None


OPENSSL_SKIP = _openssl_sm2_support()


def _sec1_private_pem(key: Sm2PrivateKey) -> str:
    """SEC1 ECPrivateKey with the SM2 curve OID (written by hand, independently of the module)."""
    der = (
        bytes.fromhex("307702010104 20".replace(" ", ""))
        + key.raw
        + bytes.fromhex("a00a06082a811ccf5501822d a144034200 04".replace(" ", ""))
        + key.public_key().raw
    )
    b64 = base64.b64encode(der).decode()
    lines = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN EC PRIVATE KEY-----\n{lines}\n-----END EC PRIVATE KEY-----\n"


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False)


@pytest.mark.skipif(OPENSSL_SKIP is not None, reason=OPENSSL_SKIP or "")
@pytest.mark.parametrize("signer_id", [DEFAULT_SIGNER_ID, b"ALICE123@YAHOO.COM"])
def test_openssl_cli_interop(tmp_path: Path, key: Sm2PrivateKey, signer_id: bytes) -> None:
    key_pem, pub_pem, msg, sig = (tmp_path / n for n in ("key.pem", "pub.pem", "msg.bin", "sig.der"))
    key_pem.write_text(_sec1_private_pem(key))
    pub_pem.write_text(key.public_key().to_pem())
    message = b"trustledger checkpoint\n" + bytes(range(256))
    msg.write_bytes(message)
    distid = f"distid:{signer_id.decode()}"

    # OpenSSL reads our private key and derives the same public key PEM that to_pem writes.
    derived = _openssl("pkey", "-in", key_pem, "-pubout")
    assert derived.returncode == 0, derived.stderr
    assert Sm2PublicKey.from_pem(derived.stdout) == key.public_key()
    assert derived.stdout == key.public_key().to_pem()

    # ours -> OpenSSL
    for backend in SM2_BACKENDS:
        sig.write_bytes(key.sign(message, signer_id, backend=backend))
        verify = ("pkeyutl", "-verify", "-pubin", "-inkey", pub_pem, "-rawin", "-digest", "sm3")
        ok = _openssl(*verify, "-in", msg, "-sigfile", sig, "-pkeyopt", distid)
        assert ok.returncode == 0 and "Verified Successfully" in ok.stdout, (backend, ok.stdout, ok.stderr)
        wrong = _openssl(*verify, "-in", msg, "-sigfile", sig, "-pkeyopt", "distid:someone-else")
        assert wrong.returncode != 0

    # OpenSSL -> ours
    signed = _openssl(
        "pkeyutl", "-sign", "-inkey", key_pem, "-rawin", "-digest", "sm3", "-in", msg, "-out", sig,
        "-pkeyopt", distid,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    openssl_signature = sig.read_bytes()
    assert der_to_rs(openssl_signature)
    for backend in SM2_BACKENDS:
        pub = key.public_key()
        assert sm2_verify(pub, message, openssl_signature, signer_id, backend=backend)
        assert not sm2_verify(pub, message + b"!", openssl_signature, signer_id, backend=backend)
