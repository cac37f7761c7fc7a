// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Hasher, RFC9162, UnknownHashAlg, Sm3PrecompileFailed} from "./RFC9162.sol";

/// @title trustledger checkpoint anchor registry
/// @notice Consortium members anchor the signed checkpoints of their verifiable logs (RFC 9162
/// Merkle trees over SHA-256 or SM3). The chain itself checks that every log only grows: each new
/// anchor of a log must carry an RFC 9162 §2.1.4 consistency proof from the log's previous anchor,
/// verified here, so a forked, rewritten or shrunken log is refused on chain. Anyone can then check
/// a receipt (an inclusion proof, RFC 9162 §2.1.3) against an anchored root with one eth_call.
/// @dev Membership is managed by a single admin. The first anchor of a log id registers its hash
/// algorithm and binds the log to the calling member (its operator); the admin can rebind it
/// (key rotation). SM3 comes from the Solidity library, or from a contract with FISCO BCOS's crypto
/// precompile interface (`sm3(bytes) returns (bytes32)`, at 0x100a on FISCO BCOS 3.x).
contract AnchorRegistry {
    /// Hash algorithm id of SHA-256.
    uint8 public constant HASH_SHA256 = RFC9162.HASH_SHA256;
    /// Hash algorithm id of SM3 (GB/T 32905-2016).
    uint8 public constant HASH_SM3 = RFC9162.HASH_SM3;

    /// One anchored checkpoint, as returned by the views.
    struct Anchor {
        uint64 treeSize;
        bytes32 rootHash;
        bytes32 checkpointHash;
        address member;
        uint64 blockTime;
        uint64 blockNumber;
    }

    /// Storage layout of an anchor: four slots (two hashes; member + size; time + number).
    struct StoredAnchor {
        bytes32 rootHash;
        bytes32 checkpointHash;
        address member;
        uint64 treeSize;
        uint64 blockTime;
        uint64 blockNumber;
    }

    /// Per-log state, one slot. hashAlg 0 means the log id was never anchored.
    struct LogState {
        uint8 hashAlg;
        address operator;
        uint64 count;
    }

    /// A consortium member: `active` while admitted, with a display name.
    struct Member {
        bool active;
        string name;
    }

    /// The caller is not the admin.
    error NotAdmin(address caller);
    /// The caller is not a member.
    error NotMember(address caller);
    /// The caller is a member but not the operator bound to the log.
    error NotLogOperator(bytes32 logId, address caller);
    /// address(0) where an account is required.
    error ZeroAddress();
    /// addMember for an existing member.
    error AlreadyMember(address member);
    /// removeMember or setLogOperator for an address that is not a member.
    error UnknownMember(address member);
    /// An anchor names another hash algorithm than the log's first anchor.
    error HashAlgMismatch(bytes32 logId, uint8 expected, uint8 given);
    /// An anchor of an empty tree.
    error EmptyTree();
    /// An anchor whose tree size is not larger than the log's last anchored size.
    error NotGrowing(bytes32 logId, uint64 lastSize, uint64 newSize);
    /// The consistency proof does not link the last anchored tree to the new one.
    error InconsistentProof(bytes32 logId, uint64 lastSize, uint64 newSize);
    /// A consistency proof on the first anchor of a log.
    error UnexpectedProof();
    /// The log id was never anchored.
    error UnknownLog(bytes32 logId);
    /// No anchor with this sequence number (anchorAt) or tree size (anchorBySize, verifyInclusion).
    error NoSuchAnchor(bytes32 logId, uint64 key);

    event AdminTransferred(address indexed previousAdmin, address indexed newAdmin);
    event MemberAdded(address indexed member, string name);
    event MemberRemoved(address indexed member);
    /// Emitted when a log is bound to its first operator (first anchor) and on every rebinding.
    event LogOperatorChanged(bytes32 indexed logId, address indexed operator);
    event CheckpointAnchored(
        bytes32 indexed logId,
        uint64 indexed sequence,
        uint64 treeSize,
        bytes32 rootHash,
        bytes32 checkpointHash,
        address indexed member
    );

    /// The SM3 precompile contract, or address(0) for SM3 computed in Solidity.
    address public immutable sm3Precompile;

    address private _admin;
    uint256 private _memberCount;
    mapping(address => Member) private _members;
    mapping(bytes32 => LogState) private _logs;
    mapping(bytes32 => mapping(uint64 => StoredAnchor)) private _anchors;

    modifier onlyAdmin() {
        if (msg.sender != _admin) revert NotAdmin(msg.sender);
        _;
    }

    /// @param admin_ the account that manages membership.
    /// @param sm3Precompile_ a contract answering `sm3(bytes) returns (bytes32)` (FISCO BCOS:
    /// 0x100a), or address(0) to compute SM3 in Solidity.
    constructor(address admin_, address sm3Precompile_) {
        if (admin_ == address(0)) revert ZeroAddress();
        _admin = admin_;
        sm3Precompile = sm3Precompile_;
        emit AdminTransferred(address(0), admin_);
    }

    // ------------------------------------------------------------------------------------------
    // Administration and membership
    // ------------------------------------------------------------------------------------------

    /// @notice The account that manages membership and log operators.
    function admin() external view returns (address) {
        return _admin;
    }

    /// @notice Hand the admin role to `newAdmin` (immediately, in one step).
    function transferAdmin(address newAdmin) external onlyAdmin {
        if (newAdmin == address(0)) revert ZeroAddress();
        emit AdminTransferred(_admin, newAdmin);
        _admin = newAdmin;
    }

    /// @notice Admit `member` to the consortium under a display name.
    function addMember(address member, string calldata name) external onlyAdmin {
        if (member == address(0)) revert ZeroAddress();
        Member storage m = _members[member];
        if (m.active) revert AlreadyMember(member);
        m.active = true;
        m.name = name;
        ++_memberCount;
        emit MemberAdded(member, name);
    }

    /// @notice Remove `member`; it can no longer anchor, including the logs it operates.
    function removeMember(address member) external onlyAdmin {
        if (!_members[member].active) revert UnknownMember(member);
        delete _members[member];
        --_memberCount;
        emit MemberRemoved(member);
    }

    /// @notice Whether `account` is a member.
    function isMember(address account) external view returns (bool) {
        return _members[account].active;
    }

    /// @notice The display name of `member` (empty for non-members).
    function memberName(address member) external view returns (string memory) {
        return _members[member].name;
    }

    /// @notice The number of members.
    function memberCount() external view returns (uint256) {
        return _memberCount;
    }

    /// @notice Rebind log `logId` to the member `operator` (key rotation, takeover).
    function setLogOperator(bytes32 logId, address operator) external onlyAdmin {
        if (operator == address(0)) revert ZeroAddress();
        LogState storage log = _logs[logId];
        if (log.hashAlg == 0) revert UnknownLog(logId);
        if (!_members[operator].active) revert UnknownMember(operator);
        log.operator = operator;
        emit LogOperatorChanged(logId, operator);
    }

    /// @notice The member that may anchor log `logId` (address(0) for an unknown log).
    function logOperator(bytes32 logId) external view returns (address) {
        return _logs[logId].operator;
    }

    // ------------------------------------------------------------------------------------------
    // Anchoring
    // ------------------------------------------------------------------------------------------

    /// @notice Anchor the checkpoint of log `logId` at `treeSize` with root `rootHash`.
    /// @param hashAlg HASH_SHA256 or HASH_SM3; fixed by the log's first anchor.
    /// @param checkpointHash a hash of the signed checkpoint text (recorded, not interpreted).
    /// @param consistencyProof empty for the first anchor of a log; afterwards the RFC 9162
    /// §2.1.4.1 proof PROOF(lastSize, D[treeSize]) from the last anchored tree, verified here.
    /// @return sequence the 0-based number of this anchor within the log.
    function anchor(
        bytes32 logId,
        uint8 hashAlg,
        uint64 treeSize,
        bytes32 rootHash,
        bytes32 checkpointHash,
        bytes32[] calldata consistencyProof
    ) external returns (uint64 sequence) {
        if (!_members[msg.sender].active) revert NotMember(msg.sender);
        if (treeSize == 0) revert EmptyTree();
        Hasher h = RFC9162.hasher(hashAlg, sm3Precompile);
        LogState memory log = _logs[logId];
        if (log.hashAlg == 0) {
            if (consistencyProof.length != 0) revert UnexpectedProof();
            _logs[logId] = LogState({hashAlg: hashAlg, operator: msg.sender, count: 1});
            emit LogOperatorChanged(logId, msg.sender);
        } else {
            if (msg.sender != log.operator) revert NotLogOperator(logId, msg.sender);
            if (hashAlg != log.hashAlg) revert HashAlgMismatch(logId, log.hashAlg, hashAlg);
            sequence = log.count;
            StoredAnchor storage last = _anchors[logId][sequence - 1];
            uint64 lastSize = last.treeSize;
            if (treeSize <= lastSize) revert NotGrowing(logId, lastSize, treeSize);
            bool consistent =
                RFC9162.verifyConsistency(h, lastSize, treeSize, last.rootHash, rootHash, consistencyProof);
            if (!consistent) revert InconsistentProof(logId, lastSize, treeSize);
            _logs[logId].count = sequence + 1;
        }
        _anchors[logId][sequence] = StoredAnchor({
            rootHash: rootHash,
            checkpointHash: checkpointHash,
            member: msg.sender,
            treeSize: treeSize,
            blockTime: uint64(block.timestamp),
            blockNumber: uint64(block.number)
        });
        emit CheckpointAnchored(logId, sequence, treeSize, rootHash, checkpointHash, msg.sender);
    }

    /// @notice The hash algorithm of log `logId` (0 for an unknown log).
    function logHashAlg(bytes32 logId) external view returns (uint8) {
        return _logs[logId].hashAlg;
    }

    /// @notice The number of anchors of log `logId` (0 for an unknown log).
    function anchorCount(bytes32 logId) external view returns (uint64) {
        return _logs[logId].count;
    }

    /// @notice The most recent anchor of log `logId`; reverts UnknownLog for an unknown log.
    function latestAnchor(bytes32 logId) external view returns (Anchor memory) {
        uint64 count = _knownLog(logId).count;
        return _load(logId, count - 1);
    }

    /// @notice Anchor number `sequence` (0-based) of log `logId`.
    function anchorAt(bytes32 logId, uint64 sequence) external view returns (Anchor memory) {
        if (sequence >= _knownLog(logId).count) revert NoSuchAnchor(logId, sequence);
        return _load(logId, sequence);
    }

    /// @notice The anchor of log `logId` at tree size `treeSize`; reverts NoSuchAnchor if that
    /// size was never anchored.
    function anchorBySize(bytes32 logId, uint64 treeSize) external view returns (Anchor memory) {
        return _load(logId, _sequenceOfSize(logId, treeSize));
    }

    // ------------------------------------------------------------------------------------------
    // Proof checking (RFC 9162 §2.1.3 and §2.1.4)
    // ------------------------------------------------------------------------------------------

    /// @notice SM3(data), with the SM3 implementation this registry uses (library or precompile).
    function sm3(bytes calldata data) external view returns (bytes32) {
        return RFC9162.digest(RFC9162.hasher(HASH_SM3, sm3Precompile), data);
    }

    /// @notice The RFC 9162 §2.1.1 leaf hash HASH(0x00 || leaf).
    function hashLeaf(uint8 hashAlg, bytes calldata leaf) external view returns (bytes32) {
        return RFC9162.hashLeaf(RFC9162.hasher(hashAlg, sm3Precompile), leaf);
    }

    /// @notice RFC 9162 §2.1.3.2: whether `proof` places `leafHash` at `leafIndex` in the tree of
    /// `treeSize` leaves with root `root`. False for any invalid proof.
    function verifyInclusionProof(
        uint8 hashAlg,
        uint64 leafIndex,
        uint64 treeSize,
        bytes32 leafHash,
        bytes32[] calldata proof,
        bytes32 root
    ) external view returns (bool) {
        Hasher h = RFC9162.hasher(hashAlg, sm3Precompile);
        return RFC9162.verifyInclusion(h, leafIndex, treeSize, leafHash, proof, root);
    }

    /// @notice RFC 9162 §2.1.4.2: whether `proof` shows the tree (oldSize, oldRoot) to be a prefix
    /// of the tree (newSize, newRoot). False for any invalid proof.
    function verifyConsistencyProof(
        uint8 hashAlg,
        uint64 oldSize,
        uint64 newSize,
        bytes32 oldRoot,
        bytes32 newRoot,
        bytes32[] calldata proof
    ) external view returns (bool) {
        return RFC9162.verifyConsistency(
            RFC9162.hasher(hashAlg, sm3Precompile), oldSize, newSize, oldRoot, newRoot, proof
        );
    }

    /// @notice Whether the raw `leaf` is leaf `leafIndex` of log `logId` as anchored at
    /// `treeSize`: the leaf is hashed with the log's algorithm and `proof` (RFC 9162 §2.1.3.1
    /// PATH) checked against the anchored root. Reverts UnknownLog / NoSuchAnchor if the log or
    /// that size was never anchored.
    function verifyInclusion(
        bytes32 logId,
        uint64 treeSize,
        uint64 leafIndex,
        bytes calldata leaf,
        bytes32[] calldata proof
    ) external view returns (bool) {
        bytes32 root = _anchors[logId][_sequenceOfSize(logId, treeSize)].rootHash;
        Hasher h = RFC9162.hasher(_logs[logId].hashAlg, sm3Precompile);
        return RFC9162.verifyInclusion(h, leafIndex, treeSize, RFC9162.hashLeaf(h, leaf), proof, root);
    }

    // ------------------------------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------------------------------

    function _knownLog(bytes32 logId) private view returns (LogState memory log) {
        log = _logs[logId];
        if (log.hashAlg == 0) revert UnknownLog(logId);
    }

    /// @dev Binary search: anchored tree sizes strictly increase with the sequence number.
    function _sequenceOfSize(bytes32 logId, uint64 treeSize) private view returns (uint64) {
        mapping(uint64 => StoredAnchor) storage anchors = _anchors[logId];
        uint64 low = 0;
        uint64 high = _knownLog(logId).count;
        while (low < high) {
            uint64 mid = low + (high - low) / 2;
            uint64 size = anchors[mid].treeSize;
            if (size == treeSize) return mid;
            if (size < treeSize) low = mid + 1;
            else high = mid;
        }
        revert NoSuchAnchor(logId, treeSize);
    }

    function _load(bytes32 logId, uint64 sequence) private view returns (Anchor memory) {
        StoredAnchor storage s = _anchors[logId][sequence];
        return Anchor({
            treeSize: s.treeSize,
            rootHash: s.rootHash,
            checkpointHash: s.checkpointHash,
            member: s.member,
            blockTime: s.blockTime,
            blockNumber: s.blockNumber
        });
    }
}
