"""The critical core of trustledger: leaf encoding, Merkle hashing, proofs, checkpoints, receipts.

Everything here is pure: bytes and plain data in, bytes and plain data out; no database, HTTP,
clock or chain access. **Changing anything in this package can invalidate every receipt already
issued** — the leaf encoding, the hash prefixes, the checkpoint text and the receipt schema are
frozen formats. A change needs a new format version beside the old one, never an edit.
"""
