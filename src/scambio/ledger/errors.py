"""The ledger's exception types.

`VerificationError` is the single type raised whenever something fails to verify: a proof,
a signature, a checkpoint, a replayed entry. Its message is precise enough to act on, and
`index` names the first bad entry when there is one.
"""

from __future__ import annotations


class VerificationError(Exception):
    """A proof, signature, checkpoint or replayed log did not verify."""

    def __init__(self, reason: str, *, index: int | None = None) -> None:
        self.reason = reason
        self.index = index
        super().__init__(f"entry {index}: {reason}" if index is not None else reason)


class RuleViolation(Exception):
    """An entry or request breaks a ledger rule (limits, holds, reversals, ids...).

    `code` is a stable slug that the HTTP layer turns into a problem `type`; `fields`
    carries the figures a client needs to act (account, available balance, shortfall).
    """

    def __init__(self, code: str, detail: str, **fields: object) -> None:
        self.code = code
        self.detail = detail
        self.fields = fields
        super().__init__(detail)
