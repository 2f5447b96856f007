"""The one encoder of bytes that are hashed or signed: RFC 8785 (JCS) canonical JSON.

Entries contain only objects with ASCII keys, strings, booleans, null and integers within
±(2**53 - 1), so msgspec's compact encoder with sorted keys produces exactly the JCS form
(tests compare it against an independent RFC 8785 implementation). Floats are refused:
no money path may ever carry one.
"""

from __future__ import annotations

from typing import Any

import msgspec

MAX_SAFE_INTEGER = 2**53 - 1

_encoder = msgspec.json.Encoder(order="sorted")


def _check(value: Any, path: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise ValueError(f"{path}: integer {value} is outside the I-JSON safe range")
        return
    if isinstance(value, float):
        raise ValueError(f"{path}: floats are not allowed in canonical JSON")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise ValueError(f"{path}: object keys must be ASCII strings")
            _check(item, f"{path}.{key}")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]")
        return
    raise ValueError(f"{path}: {type(value).__name__} is not a JSON value")


def canonical_json(value: Any) -> bytes:
    """Encode plain JSON data (dicts, lists, str, int, bool, None) as RFC 8785 bytes."""
    _check(value, "$")
    return _encoder.encode(value)
