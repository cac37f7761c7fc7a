"""The node adapter: trustledger's only door to the anchoring chain.

``config`` names the chain (backend, chain id, registry, endpoints, keystore, confirmation depth),
``keystore`` holds the anchoring key encrypted, ``embedded`` is the zero-setup in-process EVM that
persists its state, ``registry`` speaks to the AnchorRegistry contract over web3.py with failover,
bounded waits and multi-endpoint reads, and ``connect`` builds a client from a configuration.
Every web3 or provider exception becomes a :class:`~ledger.errors.ChainError` at this boundary.
(Nothing is imported here, so reading settings does not load web3.)
"""
