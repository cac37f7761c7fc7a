// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {SM3} from "../SM3.sol";

/// @title Stand-in for FISCO BCOS's SM3 precompile, for tests and benchmarks
/// @notice FISCO BCOS 3.x exposes SM3 (GB/T 32905-2016) as the crypto precompile at 0x100a with
/// the method `sm3(bytes) returns (bytes32)`. This contract answers the same call with the
/// Solidity SM3 library, so an AnchorRegistry built with its address exercises the precompile
/// code path on chains that have no such precompile (eth-tester, anvil).
contract Sm3Precompile {
    /// @notice SM3(data).
    function sm3(bytes calldata data) external pure returns (bytes32) {
        return SM3.hash(data);
    }
}
