// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title SM3 cryptographic hash (GB/T 32905-2016) for the EVM
/// @notice 256-bit digests of arbitrary byte strings, computed in EVM code. Chains with a native SM3
/// (FISCO BCOS exposes one as the crypto precompile at 0x100a) should use it instead: see
/// AnchorRegistry's `sm3Precompile`.
/// @dev Written for gas; the compression function is inline assembly. GB/T 32905-2016 §5 works
/// on 32-bit words, held here in the low 32 bits of 256-bit EVM words:
///
/// * Additions and XORs leave the low 32 bits right whatever the high bits hold, so a value that
///   only feeds further additions may carry "garbage" above bit 31 and is reduced (masked) only
///   where that matters: before a rotation, before a doubling, and when packing the result.
/// * A register that will be rotated is kept "doubled", x * 0x100000001 = x || x in 64 bits;
///   then x <<< n is simply the low 32 bits of (x || x) >> (32 - n), one shift.
/// * The message expansion computes three words per step on 32-bit lanes of 256-bit words, and
///   W'_j = W[j] ^ W[j+4] is computed eight words per step.
///
/// Working memory is the 864 bytes from the free memory pointer p, used as scratch without
/// allocating it (permitted in "memory-safe" assembly). Word arrays are packed big-endian, four
/// bytes per word, like the message itself:
///
///   p +   0 .. 272   W[0..67] (§5.3.2); W[0..15] is the message block (slack up to p + 300)
///   p + 320 .. 576   W'[0..63] (§5.3.2)
///   p + 576 .. 832   T_j <<< (j mod 32) for j = 0..63 (§4.2, §5.3.3)
///   p + 832 .. 864   the chaining value V (§5.3.1), its eight words packed as the digest bytes
library SM3 {
    /// @notice SM3(data) (GB/T 32905-2016 §5): pads and compresses `data` from memory.
    function hash(bytes memory data) internal pure returns (bytes32) {
        uint256 p = _begin();
        uint256 src;
        uint256 len;
        assembly ("memory-safe") {
            len := mload(data)
            src := add(data, 32)
        }
        // Every complete 64-byte block, copied into W[0..15].
        for (uint256 fullEnd = src + (len & ~uint256(63)); src < fullEnd; src += 64) {
            assembly ("memory-safe") {
                mstore(p, mload(src))
                mstore(add(p, 32), mload(add(src, 32)))
            }
            _compress(p);
        }
        // Padding (§5.2): the r = len mod 64 remaining bytes, the bit 1, zeros to 56 mod 64 bytes,
        // and the bit length as a 64-bit big-endian integer; one or two final blocks.
        bool twoBlocks;
        assembly ("memory-safe") {
            let r := and(len, 63)
            let w0 := mload(src)
            let w1 := mload(add(src, 32))
            switch lt(r, 32)
            case 1 {
                w0 := and(w0, not(shr(shl(3, r), not(0))))
                w1 := 0
            }
            default {
                w1 := and(w1, not(shr(shl(3, sub(r, 32)), not(0))))
            }
            mstore(p, w0)
            mstore(add(p, 32), w1)
            mstore8(add(p, r), 0x80)
            twoBlocks := gt(r, 55)
            if iszero(twoBlocks) {
                mstore(add(p, 32), or(mload(add(p, 32)), shl(3, len)))
            }
        }
        _compress(p);
        if (twoBlocks) {
            assembly ("memory-safe") {
                mstore(p, 0)
                mstore(add(p, 32), shl(3, len))
            }
            _compress(p);
        }
        return _digest(p);
    }

    /// @notice SM3(0x01 || left || right): an RFC 9162 §2.1.1 interior node hash, without copying.
    /// @dev The 65-byte message pads to exactly two blocks: 0x01 || left || right[0..30], then
    /// right[31] || 0x80 || zeros || the bit length 520 (GB/T 32905-2016 §5.2).
    function hashNode(bytes32 left, bytes32 right) internal pure returns (bytes32) {
        uint256 p = _begin();
        assembly ("memory-safe") {
            mstore(p, or(shl(248, 1), shr(8, left)))
            mstore(add(p, 32), or(shl(248, left), shr(8, right)))
        }
        _compress(p);
        assembly ("memory-safe") {
            mstore(p, or(shl(248, right), shl(240, 0x80)))
            mstore(add(p, 32), 520)
        }
        _compress(p);
        return _digest(p);
    }

    /// @dev Set up the working memory at the free memory pointer (T table, V = IV); return it.
    function _begin() private pure returns (uint256 p) {
        assembly ("memory-safe") {
            p := mload(0x40)
            // T_j <<< (j mod 32), with T_j = 0x79cc4519 for j < 16 and 0x7a879d8a after (§4.2).
            mstore(add(p, 576), 0x79cc4519f3988a32e7311465ce6228cb9cc451973988a32f7311465ee6228cbc)
            mstore(add(p, 608), 0xcc451979988a32f3311465e76228cbcec451979c88a32f3911465e73228cbce6)
            mstore(add(p, 640), 0x9d8a7a873b14f50f7629ea1eec53d43cd8a7a879b14f50f3629ea1e7c53d43ce)
            mstore(add(p, 672), 0x8a7a879d14f50f3b29ea1e7653d43ceca7a879d84f50f3b19ea1e7623d43cec5)
            mstore(add(p, 704), 0x7a879d8af50f3b14ea1e7629d43cec53a879d8a750f3b14fa1e7629e43cec53d)
            mstore(add(p, 736), 0x879d8a7a0f3b14f51e7629ea3cec53d479d8a7a8f3b14f50e7629ea1cec53d43)
            mstore(add(p, 768), 0x9d8a7a873b14f50f7629ea1eec53d43cd8a7a879b14f50f3629ea1e7c53d43ce)
            mstore(add(p, 800), 0x8a7a879d14f50f3b29ea1e7653d43ceca7a879d84f50f3b19ea1e7623d43cec5)
            // IV (§4.1).
            mstore(add(p, 832), 0x7380166f4914b2b9172442d7da8a0600a96f30bc163138aae38dee4db0fb0e4e)
        }
    }

    /// @dev The digest: the final chaining value (§5.4).
    function _digest(uint256 p) private pure returns (bytes32 digest) {
        assembly ("memory-safe") {
            digest := mload(add(p, 832))
        }
    }

    /// @dev One compression V := CF(V, B) (§5.3) of the block B held in W[0..15] at p.
    function _compress(uint256 p) private pure {
        assembly ("memory-safe") {
            // Message expansion (§5.3.2), three words at a time: for j = 16, 19, ..., 67
            //   W[j] = P1(W[j-16] ^ W[j-9] ^ (W[j-3] <<< 15)) ^ (W[j-13] <<< 7) ^ W[j-6]
            // on the top three 32-bit lanes of 256-bit loads (W[j-3..j-1] are all known when
            // W[j..j+2] are computed). Rotations are lane-wise: shift, then mask off the bits that
            // crossed into the neighbouring lane. The lower five lanes of each store are garbage
            // that the next step overwrites (the last one spills into the slack after W[67]).
            for {
                let q := add(p, 64)
            } lt(q, add(p, 272)) {
                q := add(q, 12)
            } {
                let x := mload(sub(q, 12)) // W[j-3..]
                x := xor(
                    xor(mload(sub(q, 64)), mload(sub(q, 36))), // W[j-16..] ^ W[j-9..]
                    or(
                        and(shl(15, x), 0xffff8000ffff8000ffff8000ffff8000ffff8000ffff8000ffff8000ffff8000),
                        and(shr(17, x), 0x00007fff00007fff00007fff00007fff00007fff00007fff00007fff00007fff)
                    )
                )
                // P1(x) = x ^ (x <<< 15) ^ (x <<< 23) (§4.4); the two halves of each rotation
                // occupy disjoint bits, so they are XORed in separately.
                x := xor(
                    xor(
                        xor(x, and(shl(15, x), 0xffff8000ffff8000ffff8000ffff8000ffff8000ffff8000ffff8000ffff8000)),
                        and(shr(17, x), 0x00007fff00007fff00007fff00007fff00007fff00007fff00007fff00007fff)
                    ),
                    xor(
                        and(shl(23, x), 0xff800000ff800000ff800000ff800000ff800000ff800000ff800000ff800000),
                        and(shr(9, x), 0x007fffff007fffff007fffff007fffff007fffff007fffff007fffff007fffff)
                    )
                )
                let y := mload(sub(q, 52)) // W[j-13..]
                x := xor(
                    xor(x, mload(sub(q, 24))), // ^ W[j-6..]
                    or(
                        and(shl(7, y), 0xffffff80ffffff80ffffff80ffffff80ffffff80ffffff80ffffff80ffffff80),
                        and(shr(25, y), 0x0000007f0000007f0000007f0000007f0000007f0000007f0000007f0000007f)
                    )
                )
                mstore(q, x)
            }
            // W'[j] = W[j] ^ W[j+4] for j = 0..63 (§5.3.2), eight words at a time.
            mstore(add(p, 320), xor(mload(p), mload(add(p, 16))))
            mstore(add(p, 352), xor(mload(add(p, 32)), mload(add(p, 48))))
            mstore(add(p, 384), xor(mload(add(p, 64)), mload(add(p, 80))))
            mstore(add(p, 416), xor(mload(add(p, 96)), mload(add(p, 112))))
            mstore(add(p, 448), xor(mload(add(p, 128)), mload(add(p, 144))))
            mstore(add(p, 480), xor(mload(add(p, 160)), mload(add(p, 176))))
            mstore(add(p, 512), xor(mload(add(p, 192)), mload(add(p, 208))))
            mstore(add(p, 544), xor(mload(add(p, 224)), mload(add(p, 240))))
            // Compression (§5.3.3). Unpack V into the registers A..H (the packed V is in A first);
            // A, B, E and F are doubled (see the library documentation).
            let a := mload(add(p, 832))
            let b := mul(and(shr(192, a), 0xffffffff), 0x100000001)
            let c := and(shr(160, a), 0xffffffff)
            let d := and(shr(128, a), 0xffffffff)
            let e := mul(and(shr(96, a), 0xffffffff), 0x100000001)
            let f := mul(and(shr(64, a), 0xffffffff), 0x100000001)
            let g := and(shr(32, a), 0xffffffff)
            let h := and(a, 0xffffffff)
            a := mul(shr(224, a), 0x100000001)
            let ss1
            // Each round j computes (§5.3.3), with W'_j = W[j] ^ W[j+4]:
            //   SS1 = ((A <<< 12) + E + (T_j <<< j)) <<< 7,  SS2 = SS1 ^ (A <<< 12)
            //   TT1 = FF_j(A, B, C) + D + SS2 + W'_j,       TT2 = GG_j(E, F, G) + H + SS1 + W[j]
            //   D = C, C = B <<< 9, B = A, A = TT1,          H = G, G = F <<< 19, F = E, E = P0(TT2)
            // with P0(x) = x ^ (x <<< 9) ^ (x <<< 17) (§4.4). Rounds are unrolled by four and the
            // registers renamed instead of moved: the new A is written over D's register and the
            // new E over H's, B and F are rotated in place (becoming C and G), so after four
            // rounds every register holds its own role again. The roles A, B, E, F are always
            // doubled; C, D, G, H only feed additions and bitwise functions, and may carry
            // garbage. With q = p - 28 + 4j, the low 32 bits of mload(q), mload(q + 320) and
            // mload(q + 576) are W[j], W'[j] and T_j <<< j. In the code below, on doubled values:
            // A <<< 12 = shr(20, A); SS1 = shr(25, doubled (A <<< 12) + E + T_j); the new E is
            // P0 of doubled TT2 as x ^ shr(23, x) ^ shr(15, x), reduced and doubled again; the new
            // A is TT1 reduced and doubled; C = B <<< 9 = shr(23, B); G = F <<< 19 = shr(13, F).
            let q := sub(p, 28)
            // Rounds 0..15: FF_j = GG_j = X ^ Y ^ Z (§4.3).
            for {} lt(q, add(p, 36)) { q := add(q, 16) } {
                // round j + 0: (A, B, C, D, E, F, G, H) = (a, b, c, d, e, f, g, h)
                ss1 := shr(25, mul(and(add(add(shr(20, a), e), mload(add(q, 576))), 0xffffffff), 0x100000001))
                h := mul(
                    and(add(add(add(h, ss1), mload(q)), xor(xor(e, f), g)), 0xffffffff),
                    0x100000001
                )
                h := mul(and(xor(xor(h, shr(23, h)), shr(15, h)), 0xffffffff), 0x100000001)
                d := mul(
                    and(
                        add(add(add(d, xor(ss1, shr(20, a))), mload(add(q, 320))), xor(xor(a, b), c)),
                        0xffffffff
                    ),
                    0x100000001
                )
                b := shr(23, b)
                f := shr(13, f)
                // round j + 1: (A, B, C, D, E, F, G, H) = (d, a, b, c, h, e, f, g)
                ss1 := shr(25, mul(and(add(add(shr(20, d), h), mload(add(q, 580))), 0xffffffff), 0x100000001))
                g := mul(
                    and(add(add(add(g, ss1), mload(add(q, 4))), xor(xor(h, e), f)), 0xffffffff),
                    0x100000001
                )
                g := mul(and(xor(xor(g, shr(23, g)), shr(15, g)), 0xffffffff), 0x100000001)
                c := mul(
                    and(
                        add(add(add(c, xor(ss1, shr(20, d))), mload(add(q, 324))), xor(xor(d, a), b)),
                        0xffffffff
                    ),
                    0x100000001
                )
                a := shr(23, a)
                e := shr(13, e)
                // round j + 2: (A, B, C, D, E, F, G, H) = (c, d, a, b, g, h, e, f)
                ss1 := shr(25, mul(and(add(add(shr(20, c), g), mload(add(q, 584))), 0xffffffff), 0x100000001))
                f := mul(
                    and(add(add(add(f, ss1), mload(add(q, 8))), xor(xor(g, h), e)), 0xffffffff),
                    0x100000001
                )
                f := mul(and(xor(xor(f, shr(23, f)), shr(15, f)), 0xffffffff), 0x100000001)
                b := mul(
                    and(
                        add(add(add(b, xor(ss1, shr(20, c))), mload(add(q, 328))), xor(xor(c, d), a)),
                        0xffffffff
                    ),
                    0x100000001
                )
                d := shr(23, d)
                h := shr(13, h)
                // round j + 3: (A, B, C, D, E, F, G, H) = (b, c, d, a, f, g, h, e)
                ss1 := shr(25, mul(and(add(add(shr(20, b), f), mload(add(q, 588))), 0xffffffff), 0x100000001))
                e := mul(
                    and(add(add(add(e, ss1), mload(add(q, 12))), xor(xor(f, g), h)), 0xffffffff),
                    0x100000001
                )
                e := mul(and(xor(xor(e, shr(23, e)), shr(15, e)), 0xffffffff), 0x100000001)
                a := mul(
                    and(
                        add(add(add(a, xor(ss1, shr(20, b))), mload(add(q, 332))), xor(xor(b, c), d)),
                        0xffffffff
                    ),
                    0x100000001
                )
                c := shr(23, c)
                g := shr(13, g)
            }
            // Rounds 16..63: FF_j = (X & Y) | (X & Z) | (Y & Z), GG_j = (X & Y) | (~X & Z) (§4.3),
            // computed as (X & Y) | (Z & (X | Y)) and Z ^ (X & (Y ^ Z)).
            for {} lt(q, add(p, 228)) { q := add(q, 16) } {
                // round j + 0: (A, B, C, D, E, F, G, H) = (a, b, c, d, e, f, g, h)
                ss1 := shr(25, mul(and(add(add(shr(20, a), e), mload(add(q, 576))), 0xffffffff), 0x100000001))
                h := mul(
                    and(add(add(add(h, ss1), mload(q)), xor(g, and(e, xor(f, g)))), 0xffffffff),
                    0x100000001
                )
                h := mul(and(xor(xor(h, shr(23, h)), shr(15, h)), 0xffffffff), 0x100000001)
                d := mul(
                    and(
                        add(add(add(d, xor(ss1, shr(20, a))), mload(add(q, 320))), or(and(a, b), and(c, or(a, b)))),
                        0xffffffff
                    ),
                    0x100000001
                )
                b := shr(23, b)
                f := shr(13, f)
                // round j + 1: (A, B, C, D, E, F, G, H) = (d, a, b, c, h, e, f, g)
                ss1 := shr(25, mul(and(add(add(shr(20, d), h), mload(add(q, 580))), 0xffffffff), 0x100000001))
                g := mul(
                    and(add(add(add(g, ss1), mload(add(q, 4))), xor(f, and(h, xor(e, f)))), 0xffffffff),
                    0x100000001
                )
                g := mul(and(xor(xor(g, shr(23, g)), shr(15, g)), 0xffffffff), 0x100000001)
                c := mul(
                    and(
                        add(add(add(c, xor(ss1, shr(20, d))), mload(add(q, 324))), or(and(d, a), and(b, or(d, a)))),
                        0xffffffff
                    ),
                    0x100000001
                )
                a := shr(23, a)
                e := shr(13, e)
                // round j + 2: (A, B, C, D, E, F, G, H) = (c, d, a, b, g, h, e, f)
                ss1 := shr(25, mul(and(add(add(shr(20, c), g), mload(add(q, 584))), 0xffffffff), 0x100000001))
                f := mul(
                    and(add(add(add(f, ss1), mload(add(q, 8))), xor(e, and(g, xor(h, e)))), 0xffffffff),
                    0x100000001
                )
                f := mul(and(xor(xor(f, shr(23, f)), shr(15, f)), 0xffffffff), 0x100000001)
                b := mul(
                    and(
                        add(add(add(b, xor(ss1, shr(20, c))), mload(add(q, 328))), or(and(c, d), and(a, or(c, d)))),
                        0xffffffff
                    ),
                    0x100000001
                )
                d := shr(23, d)
                h := shr(13, h)
                // round j + 3: (A, B, C, D, E, F, G, H) = (b, c, d, a, f, g, h, e)
                ss1 := shr(25, mul(and(add(add(shr(20, b), f), mload(add(q, 588))), 0xffffffff), 0x100000001))
                e := mul(
                    and(add(add(add(e, ss1), mload(add(q, 12))), xor(h, and(f, xor(g, h)))), 0xffffffff),
                    0x100000001
                )
                e := mul(and(xor(xor(e, shr(23, e)), shr(15, e)), 0xffffffff), 0x100000001)
                a := mul(
                    and(
                        add(add(add(a, xor(ss1, shr(20, b))), mload(add(q, 332))), or(and(b, c), and(d, or(b, c)))),
                        0xffffffff
                    ),
                    0x100000001
                )
                c := shr(23, c)
                g := shr(13, g)
            }
            // V(i+1) = ABCDEFGH ^ V(i) (§5.3.3).
            mstore(
                add(p, 832),
                xor(
                    mload(add(p, 832)),
                    or(
                        or(
                            or(shl(224, and(a, 0xffffffff)), shl(192, and(b, 0xffffffff))),
                            or(shl(160, and(c, 0xffffffff)), shl(128, and(d, 0xffffffff)))
                        ),
                        or(
                            or(shl(96, and(e, 0xffffffff)), shl(64, and(f, 0xffffffff))),
                            or(shl(32, and(g, 0xffffffff)), and(h, 0xffffffff))
                        )
                    )
                )
            )
        }
    }
}
