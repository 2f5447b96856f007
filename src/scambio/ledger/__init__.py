"""The pure ledger core: entries, canonical bytes, Merkle tree, checkpoints, rules, verifier.

Nothing in this package does I/O or knows about a database: the store, the API and the
offline verifier all build on it, so that the bytes hashed and the rules checked are the
same everywhere.
"""
