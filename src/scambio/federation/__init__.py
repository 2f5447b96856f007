"""Federation: peers, cross-timebank transfers, recovery and reconciliation, imports and
exports. See docs/federation.md for the protocol and ledger/SPEC.md section 13 for what
the entries carry."""
