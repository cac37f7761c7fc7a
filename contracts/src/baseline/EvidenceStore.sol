// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Per-record evidence store: the baseline of bench/bench_anchoring.py
/// @notice The pattern of many "blockchain evidence" systems: one transaction per record, which
/// stores the record's hash in a mapping with the block time and emits an event. Not part of
/// trustledger; it exists to measure what trustledger's checkpoint anchoring is compared with.
contract EvidenceStore {
    /// Block timestamp at which a hash was stored (0: never stored).
    mapping(bytes32 => uint256) public storedAt;

    /// A hash was stored by `by`.
    event Stored(bytes32 indexed hash, address indexed by);

    /// The hash is already stored.
    error AlreadyStored(bytes32 hash);

    /// Store `hash` with the current block time; reverts if it is already stored.
    function store(bytes32 hash) external {
        if (storedAt[hash] != 0) revert AlreadyStored(hash);
        storedAt[hash] = block.timestamp;
        emit Stored(hash, msg.sender);
    }
}
