"""The personal-data vault: SM4 known-answer tests, round trips, tampering, binding and key handling.

The golden sealed values below were produced once from the documented version-1 format; if they
stop opening, the change breaks every stored ciphertext and needs a new format version instead.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import gmssl_pyx
import pytest
from gmssl.sm4 import SM4_ENCRYPT, CryptSM4
from hypothesis import given
from hypothesis import strategies as st

from credit.errors import CreditError
from credit.vault import (
    FORMAT_VERSION,
    KEY_SIZE,
    NONCE_SIZE,
    TAG_SIZE,
    new_data_key,
    open_field,
    seal_field,
    unwrap_key,
    wrap_key,
)

MASTER = bytes.fromhex("00112233445566778899aabbccddeeff")
SUBJECT = b"subject-0001"
OTHER_SUBJECT = b"subject-0002"
NAMES = ["张伟", "王秀英", "欧阳娜娜", "买买提·艾力", "李 明", "Zhāng Wěi", "𠮷野家", "😀"]


def integrity_error(call: object, *args: object, **kwargs: object) -> CreditError:
    assert callable(call)
    with pytest.raises(CreditError) as info:
        call(*args, **kwargs)
    assert info.value.reason == "vault-integrity", info.value.diagnostics()
    return info.value


# --- the cipher is SM4 ---------------------------------------------------------------------------

SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
SM4_CIPHERTEXT = bytes.fromhex("681edf34d206965e86b3e94f536e4246")  # GB/T 32907-2016, example 1


def test_gmssl_pure_python_sm4_matches_the_standard_vector() -> None:
    cipher = CryptSM4()
    cipher.set_key(SM4_KEY, SM4_ENCRYPT)
    assert cipher.crypt_ecb(SM4_KEY)[:16] == SM4_CIPHERTEXT  # first block; the rest is padding


def test_gmssl_pyx_block_cipher_matches_the_standard_vector() -> None:
    # CTR mode encrypts the counter block and XORs it into the data: over one zero block with the
    # counter set to the plaintext, it yields the raw SM4 encryption of that block.
    assert gmssl_pyx.sm4_ctr_encrypt(SM4_KEY, SM4_KEY, bytes(16)) == SM4_CIPHERTEXT


def test_gmssl_pyx_sm4_gcm_matches_rfc_8998() -> None:
    # RFC 8998, appendix A.1 (SM4-GCM).
    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    iv = bytes.fromhex("00001234567800000000ABCD")
    aad = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
    plaintext = bytes.fromhex(
        "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
        "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
    )
    ciphertext = bytes.fromhex(
        "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
        "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
    )
    tag = bytes.fromhex("83DE3541E4C2B58177E065A9BF7B62EC")
    assert gmssl_pyx.sm4_gcm_encrypt(key, iv, aad, plaintext) == (ciphertext, tag)
    assert gmssl_pyx.sm4_gcm_decrypt(key, iv, aad, ciphertext, tag) == plaintext


# --- the frozen format ---------------------------------------------------------------------------

GOLDEN_KEY = bytes(range(16))
GOLDEN_NONCE = bytes.fromhex("000102030405060708090a0b")
GOLDEN_FIELD = bytes.fromhex("01000102030405060708090a0b72fa7e1f75f549853a491568d79c727f2f4d790196b7")
GOLDEN_WRAPPED = bytes.fromhex(
    "01000102030405060708090a0bccc2eaa89192f77c2e4519badab3631e0201b7b7f00b6024d4cef7e0c75f80df"
)


def lp(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def test_golden_field_opens() -> None:
    assert open_field(GOLDEN_KEY, GOLDEN_FIELD, subject_ref=SUBJECT, field="name") == "张伟"


def test_golden_field_follows_the_documented_format() -> None:
    aad = b"trustledger/vault/field/v1\x00" + b"\x01" + lp(SUBJECT) + lp(b"name")
    ciphertext, tag = gmssl_pyx.sm4_gcm_encrypt(GOLDEN_KEY, GOLDEN_NONCE, aad, "张伟".encode())
    assert GOLDEN_FIELD == b"\x01" + GOLDEN_NONCE + ciphertext + tag


def test_golden_wrapped_key_opens_and_follows_the_documented_format() -> None:
    assert unwrap_key(MASTER, GOLDEN_WRAPPED, subject_ref=SUBJECT) == GOLDEN_KEY
    aad = b"trustledger/vault/key/v1\x00" + b"\x01" + lp(SUBJECT)
    ciphertext, tag = gmssl_pyx.sm4_gcm_encrypt(MASTER, GOLDEN_NONCE, aad, GOLDEN_KEY)
    assert GOLDEN_WRAPPED == b"\x01" + GOLDEN_NONCE + ciphertext + tag


def test_sealed_layout() -> None:
    key = new_data_key()
    sealed = seal_field(key, "张伟", subject_ref=SUBJECT, field="name")
    assert sealed[0] == FORMAT_VERSION == 1
    assert len(sealed) == 1 + NONCE_SIZE + len("张伟".encode()) + TAG_SIZE
    again = seal_field(key, "张伟", subject_ref=SUBJECT, field="name")
    assert again[1:13] != sealed[1:13]  # a fresh random nonce each time
    assert again != sealed
    wrapped = wrap_key(MASTER, key, subject_ref=SUBJECT)
    assert len(wrapped) == 1 + NONCE_SIZE + KEY_SIZE + TAG_SIZE == 45


# --- round trips ---------------------------------------------------------------------------------


def test_new_data_keys_are_random_16_byte_keys() -> None:
    keys = {new_data_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(len(k) == 16 for k in keys)


@pytest.mark.parametrize("name", NAMES)
def test_names_round_trip(name: str) -> None:
    key = new_data_key()
    sealed = seal_field(key, name, subject_ref=SUBJECT, field="name")
    assert open_field(key, sealed, subject_ref=SUBJECT, field="name") == name


@given(
    value=st.text(min_size=1) | st.sampled_from(NAMES),
    subject=st.binary(min_size=1, max_size=64),
    field=st.text(min_size=1, max_size=20),
)
def test_round_trip(value: str, subject: bytes, field: str) -> None:
    key = new_data_key()
    sealed = seal_field(key, value, subject_ref=subject, field=field)
    assert open_field(key, sealed, subject_ref=subject, field=field) == value


@given(subject=st.binary(min_size=1, max_size=64))
def test_key_wrap_round_trip(subject: bytes) -> None:
    key = new_data_key()
    assert unwrap_key(MASTER, wrap_key(MASTER, key, subject_ref=subject), subject_ref=subject) == key


def test_long_value_round_trips() -> None:
    key = new_data_key()
    value = "福州市鼓楼区" * 2000
    assert open_field(key, seal_field(key, value, subject_ref=SUBJECT, field="address"),
                      subject_ref=SUBJECT, field="address") == value  # fmt: skip


# --- tampering and binding -----------------------------------------------------------------------


def sealed_name() -> tuple[bytes, bytes]:
    key = new_data_key()
    return key, seal_field(key, "欧阳娜娜", subject_ref=SUBJECT, field="name")


REGIONS = {
    "version": [0],
    "nonce": list(range(1, 1 + NONCE_SIZE)),
    "ciphertext": list(range(1 + NONCE_SIZE, 1 + NONCE_SIZE + 12)),
    "tag": list(range(1 + NONCE_SIZE + 12, 1 + NONCE_SIZE + 12 + TAG_SIZE)),
}


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_tampering_any_byte_of_each_region_fails(region: str) -> None:
    key, sealed = sealed_name()
    assert len(sealed) == 1 + NONCE_SIZE + 12 + TAG_SIZE
    for position in REGIONS[region]:
        for bit in (0x01, 0x80):
            tampered = bytearray(sealed)
            tampered[position] ^= bit
            integrity_error(open_field, key, bytes(tampered), subject_ref=SUBJECT, field="name")


@given(st.data())
def test_tampering_any_bit_fails(data: st.DataObject) -> None:
    key, sealed = sealed_name()
    position = data.draw(st.integers(0, len(sealed) - 1))
    bit = data.draw(st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128]))
    tampered = bytearray(sealed)
    tampered[position] ^= bit
    integrity_error(open_field, key, bytes(tampered), subject_ref=SUBJECT, field="name")


@pytest.mark.parametrize("cut", [1, 16, 17, 29, 30])
def test_truncated_or_extended_values_fail(cut: int) -> None:
    key, sealed = sealed_name()
    integrity_error(open_field, key, sealed[:-cut], subject_ref=SUBJECT, field="name")
    integrity_error(open_field, key, sealed + b"\x00" * cut, subject_ref=SUBJECT, field="name")
    integrity_error(open_field, key, b"", subject_ref=SUBJECT, field="name")


def test_unknown_version_fails_even_with_a_valid_body() -> None:
    key, sealed = sealed_name()
    integrity_error(open_field, key, b"\x02" + sealed[1:], subject_ref=SUBJECT, field="name")


def test_wrong_field_subject_or_key_fails() -> None:
    key, sealed = sealed_name()
    integrity_error(open_field, key, sealed, subject_ref=SUBJECT, field="phone")
    integrity_error(open_field, key, sealed, subject_ref=SUBJECT, field="Name")
    integrity_error(open_field, key, sealed, subject_ref=OTHER_SUBJECT, field="name")
    integrity_error(open_field, key, sealed, subject_ref=SUBJECT + b"\x00", field="name")
    integrity_error(open_field, new_data_key(), sealed, subject_ref=SUBJECT, field="name")


def test_length_prefixes_keep_subject_and_field_apart() -> None:
    # Without length prefixes, ("ab", "c") and ("a", "bc") would give the same AAD bytes.
    key = new_data_key()
    sealed = seal_field(key, "x", subject_ref=b"ab", field="c")
    integrity_error(open_field, key, sealed, subject_ref=b"a", field="bc")


def test_wrapped_key_is_bound_to_master_and_subject() -> None:
    key = new_data_key()
    wrapped = wrap_key(MASTER, key, subject_ref=SUBJECT)
    integrity_error(unwrap_key, MASTER, wrapped, subject_ref=OTHER_SUBJECT)
    integrity_error(unwrap_key, bytes(16), wrapped, subject_ref=SUBJECT)
    for position in range(len(wrapped)):
        tampered = bytearray(wrapped)
        tampered[position] ^= 0x01
        integrity_error(unwrap_key, MASTER, bytes(tampered), subject_ref=SUBJECT)


def test_wrapped_keys_and_fields_are_domain_separated() -> None:
    # A wrapped key is not a sealed field under the master key, nor the other way round.
    key = new_data_key()
    wrapped = wrap_key(MASTER, key, subject_ref=SUBJECT)
    integrity_error(open_field, MASTER, wrapped, subject_ref=SUBJECT, field="key")
    sealed = seal_field(MASTER, "0123456789abcdef", subject_ref=SUBJECT, field="key")
    integrity_error(unwrap_key, MASTER, sealed, subject_ref=SUBJECT)


def test_crypto_shredding() -> None:
    """Once the wrapped key is gone, nothing else opens the subject's fields."""
    store: dict[str, bytes] = {}
    key = new_data_key()
    store["wrapped"] = wrap_key(MASTER, key, subject_ref=SUBJECT)
    store["name"] = seal_field(key, "张伟", subject_ref=SUBJECT, field="name")
    reopened = unwrap_key(MASTER, store["wrapped"], subject_ref=SUBJECT)
    assert open_field(reopened, store["name"], subject_ref=SUBJECT, field="name") == "张伟"

    del store["wrapped"]
    del key, reopened
    # A fresh key for the same subject (re-registration) cannot read the old ciphertext.
    integrity_error(open_field, new_data_key(), store["name"], subject_ref=SUBJECT, field="name")
    integrity_error(open_field, MASTER, store["name"], subject_ref=SUBJECT, field="name")


# --- keys and arguments --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [b"", bytes(15), bytes(17), bytes(32)])
def test_wrong_size_keys_are_refused(bad: bytes) -> None:
    key = new_data_key()
    calls: list[Callable[[], object]] = [
        lambda: wrap_key(bad, key, subject_ref=SUBJECT),
        lambda: wrap_key(MASTER, bad, subject_ref=SUBJECT),
        lambda: unwrap_key(bad, GOLDEN_WRAPPED, subject_ref=SUBJECT),
        lambda: seal_field(bad, "张伟", subject_ref=SUBJECT, field="name"),
        lambda: open_field(bad, GOLDEN_FIELD, subject_ref=SUBJECT, field="name"),
    ]
    for call in calls:
        with pytest.raises(CreditError) as info:
            call()
        assert info.value.reason == "vault-key"
        assert f"got {len(bad)}" in info.value.message


def test_non_bytes_key_is_refused() -> None:
    with pytest.raises(CreditError) as info:
        wrap_key("0123456789abcdef", new_data_key(), subject_ref=SUBJECT)  # type: ignore[arg-type]
    assert info.value.reason == "vault-key"


def test_bytearray_keys_are_accepted() -> None:
    key = bytearray(new_data_key())
    sealed = seal_field(key, "张伟", subject_ref=bytearray(SUBJECT), field="name")  # type: ignore[arg-type]
    assert open_field(bytes(key), sealed, subject_ref=SUBJECT, field="name") == "张伟"


def test_empty_value_subject_or_field_is_refused() -> None:
    key = new_data_key()
    with pytest.raises(ValueError, match="empty value"):
        seal_field(key, "", subject_ref=SUBJECT, field="name")
    with pytest.raises(ValueError, match="subject_ref"):
        seal_field(key, "x", subject_ref=b"", field="name")
    with pytest.raises(ValueError, match="field name"):
        seal_field(key, "x", subject_ref=SUBJECT, field="")
    with pytest.raises(ValueError, match="subject_ref"):
        wrap_key(MASTER, key, subject_ref=b"")
    with pytest.raises(TypeError):
        seal_field(key, b"bytes", subject_ref=SUBJECT, field="name")  # type: ignore[arg-type]


def test_error_messages_reveal_nothing_about_the_plaintext() -> None:
    key, sealed = sealed_name()
    error = integrity_error(open_field, key, sealed, subject_ref=SUBJECT, field="phone")
    assert "欧阳" not in error.message
    assert error.message == "sealed field does not authenticate"
