// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {SM3} from "./SM3.sol";

/// The hash algorithm id is neither RFC9162.HASH_SHA256 nor RFC9162.HASH_SM3.
error UnknownHashAlg(uint8 hashAlg);

/// The SM3 precompile did not answer a 32-byte digest.
error Sm3PrecompileFailed(address precompile);

/// A hash function choice (see RFC9162.hasher): the algorithm id in the low byte, the SM3
/// precompile address (or 0) in the next 20 bytes. One stack slot instead of two.
type Hasher is uint256;

/// @title RFC 9162 Merkle tree hashing and proof verification, over SHA-256 or SM3
/// @notice The tree of RFC 9162 §2.1 (unchanged from RFC 6962 §2.1): leaf hash HASH(0x00 || d),
/// interior node hash HASH(0x01 || left || right), empty tree HASH(""). Inclusion proofs are
/// checked with the algorithm of §2.1.3.2, consistency proofs with the one of §2.1.4.2; the
/// edge cases (equal sizes, old size 0) follow trustledger's ledger.core.merkle.
/// @dev The hash function is a parameter, a Hasher made by `hasher(hashAlg, sm3Precompile)`:
/// `hashAlg` is HASH_SHA256 or HASH_SM3 and, for SM3, `sm3Precompile` the address of a contract
/// with FISCO BCOS's crypto precompile interface `sm3(bytes) returns (bytes32)`, or address(0)
/// for the Solidity SM3 library. SHA-256 is the EVM precompile 0x02.
/// A proof that does not verify yields false; only an unknown algorithm (or a failing SM3
/// precompile) reverts.
library RFC9162 {
    /// Algorithm id of SHA-256 (FIPS 180-4).
    uint8 internal constant HASH_SHA256 = 1;
    /// Algorithm id of SM3 (GB/T 32905-2016).
    uint8 internal constant HASH_SM3 = 2;

    /// Selector of `sm3(bytes)`, the FISCO BCOS 3.x crypto precompile (0x100a) method.
    bytes4 internal constant SM3_SELECTOR = bytes4(keccak256("sm3(bytes)"));

    /// @notice The Hasher for `hashAlg`; reverts UnknownHashAlg unless it is HASH_SHA256 or
    /// HASH_SM3. `sm3Precompile` is only used for SM3 (address(0): the Solidity library).
    function hasher(uint8 hashAlg, address sm3Precompile) internal pure returns (Hasher) {
        if (hashAlg != HASH_SHA256 && hashAlg != HASH_SM3) revert UnknownHashAlg(hashAlg);
        return Hasher.wrap(uint256(hashAlg) | (uint256(uint160(sm3Precompile)) << 8));
    }

    /// @notice HASH(data).
    function digest(Hasher h, bytes memory data) internal view returns (bytes32) {
        (uint8 alg, address precompile) = _unpack(h);
        if (alg == HASH_SHA256) return sha256(data);
        if (precompile == address(0)) return SM3.hash(data);
        return _sm3ByPrecompile(precompile, data);
    }

    /// @notice The leaf hash HASH(0x00 || leaf) (RFC 9162 §2.1.1).
    function hashLeaf(Hasher h, bytes memory leaf) internal view returns (bytes32) {
        return digest(h, bytes.concat(bytes1(0x00), leaf));
    }

    /// @notice The interior node hash HASH(0x01 || left || right) (RFC 9162 §2.1.1).
    function hashNode(Hasher h, bytes32 left, bytes32 right) internal view returns (bytes32 result) {
        (uint8 alg, address precompile) = _unpack(h);
        if (alg == HASH_SHA256) {
            // The 65-byte message is laid out past the free memory pointer (scratch) and hashed
            // by the SHA-256 precompile; its output goes to the scratch word at 0.
            bool ok;
            assembly ("memory-safe") {
                let p := mload(0x40)
                mstore8(p, 0x01)
                mstore(add(p, 1), left)
                mstore(add(p, 33), right)
                ok := staticcall(gas(), 0x02, p, 65, 0x00, 0x20)
                result := mload(0x00)
            }
            if (!ok) revert(); // only when out of gas
            return result;
        }
        if (precompile == address(0)) return SM3.hashNode(left, right);
        // sm3(bytes) with the 65-byte message, ABI-encoded by hand past the free memory pointer:
        // selector, offset 0x20, length 65, the message zero-padded to 96 bytes (164 bytes).
        bool success;
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, shl(224, 0xfb34363c)) // bytes4(keccak256("sm3(bytes)")) = SM3_SELECTOR
            mstore(add(p, 4), 0x20)
            mstore(add(p, 36), 65)
            mstore8(add(p, 68), 0x01)
            mstore(add(p, 69), left)
            mstore(add(p, 101), right)
            mstore(add(p, 133), 0)
            success := staticcall(gas(), precompile, p, 164, 0x00, 0x20)
            success := and(success, eq(returndatasize(), 0x20))
            result := mload(0x00)
        }
        if (!success) revert Sm3PrecompileFailed(precompile);
    }

    /// @notice The root of the empty tree, HASH("") (RFC 9162 §2.1.1).
    function emptyRoot(Hasher h) internal view returns (bytes32) {
        return digest(h, "");
    }

    /// @notice Whether `proof` shows that `leafHash` is leaf `leafIndex` of the tree of `treeSize`
    /// leaves with root `root` (RFC 9162 §2.1.3.2).
    /// @dev `proof` is PATH(leafIndex, D[treeSize]) of §2.1.3.1, leaf level first.
    function verifyInclusion(
        Hasher h,
        uint256 leafIndex,
        uint256 treeSize,
        bytes32 leafHash,
        bytes32[] calldata proof,
        bytes32 root
    ) internal view returns (bool) {
        // 1. leaf_index must be smaller than tree_size.
        if (leafIndex >= treeSize) return false;
        // 2.-3. fn = leaf_index, sn = tree_size - 1, r = hash (fn, sn and r reuse the arguments).
        uint256 sn = treeSize - 1;
        // 4. For each value p in the inclusion_path array:
        for (uint256 i = 0; i < proof.length; ++i) {
            // a. If sn is 0, the proof is too long.
            if (sn == 0) return false;
            // b. If LSB(fn) is set, or if fn is equal to sn, then:
            if (leafIndex & 1 == 1 || leafIndex == sn) {
                // 1. Set r to HASH(0x01 || p || r).
                leafHash = hashNode(h, proof[i], leafHash);
                // 2. If LSB(fn) is not set, right-shift fn and sn equally until either LSB(fn)
                //    is set or fn is 0.
                while (leafIndex & 1 == 0 && leafIndex != 0) {
                    leafIndex >>= 1;
                    sn >>= 1;
                }
            } else {
                // Otherwise: set r to HASH(0x01 || r || p).
                leafHash = hashNode(h, leafHash, proof[i]);
            }
            // c. Finally, right-shift both fn and sn one time.
            leafIndex >>= 1;
            sn >>= 1;
        }
        // 5. sn must be 0 and r must equal the root.
        return sn == 0 && leafHash == root;
    }

    /// @notice Whether `proof` shows that the tree of `oldSize` leaves with root `oldRoot` is a
    /// prefix of the tree of `newSize` leaves with root `newRoot` (RFC 9162 §2.1.4.2).
    /// @dev `proof` is PROOF(oldSize, D[newSize]) of §2.1.4.1. As in ledger.core.merkle: equal
    /// sizes need an empty proof and equal roots; old size 0 needs an empty proof and the
    /// empty-tree root as `oldRoot`; a shrinking range is never consistent.
    function verifyConsistency(
        Hasher h,
        uint256 oldSize,
        uint256 newSize,
        bytes32 oldRoot,
        bytes32 newRoot,
        bytes32[] calldata proof
    ) internal view returns (bool) {
        if (oldSize > newSize) return false;
        if (oldSize == newSize) return proof.length == 0 && oldRoot == newRoot;
        if (oldSize == 0) return proof.length == 0 && oldRoot == emptyRoot(h);
        // 1. If consistency_path is an empty array, stop and fail the proof verification.
        if (proof.length == 0) return false;
        // 2. If first is an exact power of 2, then prepend first_hash to the consistency_path
        //    array: the walk then starts from first_hash instead of from consistency_path[0].
        (bytes32 fr, bytes32 sr, uint256 sn) = oldSize & (oldSize - 1) == 0
            ? _consistencyWalk(h, oldSize - 1, newSize - 1, proof, 0, oldRoot)
            : _consistencyWalk(h, oldSize - 1, newSize - 1, proof, 1, proof[0]);
        // 7. fr must equal first_hash, sr must equal second_hash, and sn must be 0.
        return sn == 0 && fr == oldRoot && sr == newRoot;
    }

    /// @dev Steps 3-6 of RFC 9162 §2.1.4.2 over path[i:], from fr = sr = `seed`, with
    /// fn = first - 1 and sn = second - 1. Returns (fr, sr, sn); a non-zero sn means failure.
    function _consistencyWalk(
        Hasher h,
        uint256 fn,
        uint256 sn,
        bytes32[] calldata path,
        uint256 i,
        bytes32 seed
    ) private view returns (bytes32 fr, bytes32 sr, uint256) {
        // 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
        while (fn & 1 == 1) {
            fn >>= 1;
            sn >>= 1;
        }
        // 5. Set both fr and sr to the first value in the consistency_path array.
        fr = seed;
        sr = seed;
        // 6. For each subsequent value c in the consistency_path array:
        for (; i < path.length; ++i) {
            // a. If sn is 0, then stop the iteration and fail the proof verification.
            if (sn == 0) return (fr, sr, 1);
            // b. If LSB(fn) is set, or if fn is equal to sn, then:
            if (fn & 1 == 1 || fn == sn) {
                // 1. Set fr to HASH(0x01 || c || fr); set sr to HASH(0x01 || c || sr).
                fr = hashNode(h, path[i], fr);
                sr = hashNode(h, path[i], sr);
                // 2. If LSB(fn) is not set, then right-shift both fn and sn equally until
                //    either LSB(fn) is set or fn is 0.
                while (fn & 1 == 0 && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            } else {
                // Otherwise: set sr to HASH(0x01 || sr || c).
                sr = hashNode(h, sr, path[i]);
            }
            // c. Finally, right-shift both fn and sn one time.
            fn >>= 1;
            sn >>= 1;
        }
        return (fr, sr, sn);
    }

    function _unpack(Hasher h) private pure returns (uint8 alg, address precompile) {
        uint256 raw = Hasher.unwrap(h);
        return (uint8(raw), address(uint160(raw >> 8)));
    }

    /// @dev SM3(data) by a staticcall of `sm3(bytes)` on `precompile`.
    function _sm3ByPrecompile(address precompile, bytes memory data) private view returns (bytes32) {
        (bool ok, bytes memory out) = precompile.staticcall(abi.encodeWithSelector(SM3_SELECTOR, data));
        if (!ok || out.length != 32) revert Sm3PrecompileFailed(precompile);
        return abi.decode(out, (bytes32));
    }
}
