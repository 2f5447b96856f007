"""The node's Ed25519 signing key, kept in a file as a C2SP signer key string.

The key is generated once, written atomically (temporary file, fsync, rename) with mode
0600, so that a crash while creating it never leaves a half-written key behind, and a
restart always signs with the same key.
"""

from __future__ import annotations

import os
from pathlib import Path

from scambio.ledger.errors import VerificationError
from scambio.ledger.note import Signer


class KeyFileError(RuntimeError):
    """The key file exists but cannot be used."""


def load_or_create_key(path: Path, name: str) -> Signer:
    if path.exists():
        return load_key(path)
    signer = Signer.generate(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (signer.to_string() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process created the key meanwhile
    except FileExistsError:
        os.unlink(tmp)
        return load_key(path)
    os.unlink(tmp)
    return signer


def load_key(path: Path) -> Signer:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise KeyFileError(f"cannot read the node key {path}: {exc}") from exc
    try:
        return Signer.from_string(text)
    except VerificationError as exc:
        raise KeyFileError(f"{path} does not hold a valid signer key: {exc}") from exc
