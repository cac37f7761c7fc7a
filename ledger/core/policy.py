"""The trust policy: what a verifier trusts, published by the consortium out of band.

A receipt carries the log key, the registry and the chain it was anchored on — an operator who
holds the log key could fill in all of them (a forked tree anchored in a registry of its own). A
verifier therefore pins what it trusts from a policy file (``format: trustledger-trust-policy``,
``version: 1``) and checks the receipt against it:

- ``log``: the origin, the tree hash and the log's SM2 public keys, each valid for a range of
  tree sizes (``from_size`` inclusive, ``until_size`` exclusive, open when null), so the log key
  can be rotated without invalidating old receipts; a key marked ``revoked`` is never trusted;
- ``chain``: the chain id, the consortium's registry address(es) and member JSON-RPC endpoints;
- ``witnesses`` and ``witness_quorum``: the cosigners whose cosignatures count, and how many of
  them must have cosigned a checkpoint.

``serial`` increases with every published revision. Pure data and functions; no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from ledger.core.crypto import HashAlgorithm, Sm2PublicKey, digest_function
from ledger.errors import ConfigurationError

POLICY_FORMAT: Literal["trustledger-trust-policy"] = "trustledger-trust-policy"
POLICY_VERSION: Literal[1] = 1
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_KEY_HEX = r"^[0-9a-f]{128}$"
_NAME = r"^[^\s+]{1,200}$"


def _evm_address(value: str) -> str:
    if not _ADDRESS.match(value):
        raise ValueError(f"not an EVM address: {value!r}")
    return value


def _rpc_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) JSON-RPC URL: {value!r}")
    return value


EvmAddress = Annotated[str, AfterValidator(_evm_address)]
"""A 20-byte EVM address, ``0x`` and 40 hex digits (any letter case)."""
RpcUrl = Annotated[str, AfterValidator(_rpc_url)]
"""An http(s) JSON-RPC endpoint URL."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PolicyLogKey(_Frozen):
    """One log key and the tree sizes whose checkpoints it may sign."""

    public_key: str = Field(pattern=_KEY_HEX, description="SM2 x||y, hex")
    key_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="SM3(x||y)[:16], hex; checked on load")
    from_size: int = Field(default=0, ge=0)
    until_size: int | None = Field(default=None, ge=1, description="exclusive; null: still in use")
    revoked: bool = Field(default=False, description="compromised: trusted for no checkpoint at all")

    @model_validator(mode="after")
    def _consistent(self) -> PolicyLogKey:
        if self.key().key_id() != self.key_id:
            raise ValueError(f"key_id {self.key_id} is not the id of public key {self.public_key[:16]}…")
        if self.until_size is not None and self.until_size <= self.from_size:
            raise ValueError("until_size must be greater than from_size")
        return self

    def key(self) -> Sm2PublicKey:
        """The SM2 public key."""
        return Sm2PublicKey.from_hex(self.public_key)

    def covers(self, tree_size: int) -> bool:
        """Whether this key may sign a checkpoint of ``tree_size``."""
        return self.from_size <= tree_size and (self.until_size is None or tree_size < self.until_size)


class PolicyLog(_Frozen):
    """The log a policy trusts."""

    origin: str = Field(min_length=1, max_length=500, pattern=r"^[^\n]+$")
    hash_alg: HashAlgorithm
    keys: tuple[PolicyLogKey, ...] = Field(min_length=1, max_length=100)


class PolicyChain(_Frozen):
    """The consortium chain whose registry the log's checkpoints must be anchored in."""

    chain_id: int = Field(ge=1)
    registries: tuple[EvmAddress, ...] = Field(min_length=1, max_length=20)
    rpc_urls: tuple[RpcUrl, ...] = Field(default=(), max_length=50, description="member JSON-RPC endpoints")
    confirmations: int = Field(default=0, ge=0, le=1000, description="depth a verifier requires")

    def has_registry(self, address: str) -> bool:
        """Whether ``address`` is one of the consortium's registries (EVM addresses ignore case)."""
        return address.lower() in {r.lower() for r in self.registries}


class PolicyWitness(_Frozen):
    """A witness whose cosignatures count towards the quorum."""

    name: str = Field(pattern=_NAME, description="its signed-note key name")
    public_key: str = Field(pattern=_KEY_HEX)
    url: str | None = Field(default=None, description="where the log submits checkpoints (tlog-witness)")

    def key(self) -> Sm2PublicKey:
        """The witness's SM2 public key."""
        return Sm2PublicKey.from_hex(self.public_key)


class TrustPolicy(_Frozen):
    """A consortium's trust policy, version 1."""

    format: Literal["trustledger-trust-policy"]
    version: Literal[1]
    serial: int = Field(ge=1, description="increases with every published revision")
    log: PolicyLog
    chain: PolicyChain | None = Field(default=None, description="null: the log is not anchored")
    witnesses: tuple[PolicyWitness, ...] = Field(default=(), max_length=100)
    witness_quorum: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _quorum(self) -> TrustPolicy:
        if self.witness_quorum > len(self.witnesses):
            count = len(self.witnesses)
            raise ValueError(f"witness_quorum {self.witness_quorum} exceeds the {count} witnesses")
        names = [w.name for w in self.witnesses]
        if len(set(names)) != len(names):
            raise ValueError("witness names must be unique")
        return self

    @classmethod
    def from_json(cls, text: str | bytes) -> TrustPolicy:
        """Parse and validate a policy document; :class:`ConfigurationError` names the bad field."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "top"
            raise ConfigurationError(f"invalid trust policy at {where}: {first['msg']}") from e

    def to_json(self) -> str:
        """The policy as pretty JSON (the form to publish)."""
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"

    def fingerprint(self) -> str:
        """SM3 of the policy's compact JSON (sorted keys), to compare copies by voice or on paper."""
        compact = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return digest_function(HashAlgorithm.SM3)(compact.encode()).hex()

    def log_keys_for(self, tree_size: int) -> list[PolicyLogKey]:
        """The unrevoked log keys that may sign a checkpoint of ``tree_size``."""
        return [k for k in self.log.keys if k.covers(tree_size) and not k.revoked]

    def log_key_entry(self, public_key: Sm2PublicKey) -> PolicyLogKey | None:
        """The policy's entry for ``public_key`` (None: not a key of this log)."""
        return next((k for k in self.log.keys if k.public_key == public_key.hex()), None)

    def with_rotated_log_key(self, new_key: Sm2PublicKey, at_size: int) -> TrustPolicy:
        """The next revision: open keys end after ``at_size``; ``new_key`` signs from ``at_size`` on.

        Both keys may sign a checkpoint of exactly ``at_size`` (the tree head at the rotation).
        """
        if self.log_key_entry(new_key) is not None:
            raise ConfigurationError(f"key {new_key.key_id()} is already in the policy")
        kept = tuple(
            k.model_copy(update={"until_size": at_size + 1}) if k.until_size is None and not k.revoked else k
            for k in self.log.keys
        )
        added = PolicyLogKey(public_key=new_key.hex(), key_id=new_key.key_id(), from_size=at_size)
        log = self.log.model_copy(update={"keys": (*kept, added)})
        rotated = self.model_copy(update={"serial": self.serial + 1, "log": log})
        return TrustPolicy.from_json(rotated.model_dump_json())  # re-validated as a whole


def new_policy(
    *,
    origin: str,
    hash_alg: HashAlgorithm,
    log_key: Sm2PublicKey,
    chain: PolicyChain | None = None,
    witnesses: tuple[PolicyWitness, ...] = (),
    witness_quorum: int = 0,
) -> TrustPolicy:
    """A first policy (serial 1) for a log with one key valid from size 0."""
    return TrustPolicy(
        format=POLICY_FORMAT,
        version=POLICY_VERSION,
        serial=1,
        log=PolicyLog(
            origin=origin,
            hash_alg=hash_alg,
            keys=(PolicyLogKey(public_key=log_key.hex(), key_id=log_key.key_id()),),
        ),
        chain=chain,
        witnesses=witnesses,
        witness_quorum=witness_quorum,
    )
