"""A C2SP tlog-witness that member agencies run with their own SM2 key.

The witness keeps, for every log it witnesses (known by origin from a trust policy), the latest
tree head it cosigned, and cosigns a new checkpoint only if the log signed it and it extends that
tree head (an RFC 9162 consistency proof). Cosignatures use C2SP tlog-cosignature's layout with SM2
(:mod:`ledger.core.cosignature`).

- :mod:`ledger.witness.protocol`: the pure part — parsing an ``add-checkpoint`` request, checking
  the log's signature, and the state transition from the stored tree head to the new one;
- :mod:`ledger.witness.storage`: the state, one SQLite row per log, updated atomically;
- :mod:`ledger.witness.service`: the witness itself (protocol + storage + key + clock);
- :mod:`ledger.witness.http`: the HTTP shell (a small Starlette app);
- :mod:`ledger.witness.keyfile`: the witness's key file.
"""
