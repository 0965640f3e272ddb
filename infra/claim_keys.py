"""The claim-signing keys from settings, or the embedded mode's generated key file.

Infrastructure: reads settings and the data folder; the signing and verifying themselves are
`workflows.claims` (pure).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from infra.settings import Settings

KEY_FILE = "claims.key"
MIN_KEY_LENGTH = 32


class ClaimKeyError(Exception):
    """No usable signing key: one line saying which setting to set."""


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    secret: bytes

    def __repr__(self) -> str:
        return f"SigningKey({self.key_id!r}, <secret>)"


def signing_key(settings: Settings, *, create: bool = True) -> SigningKey:
    """ACCORD_CLAIMS__KEY; with the embedded server and no key set, the data folder's key file
    (created once, readable by its owner only; without `create`, a missing file is an error:
    a command must not make a key the running service does not know)."""
    claims = settings.claims
    if claims.key is not None:
        secret = claims.key.get_secret_value()
        if len(secret) < MIN_KEY_LENGTH:
            raise ClaimKeyError(
                f"ACCORD_CLAIMS__KEY is too short: at least {MIN_KEY_LENGTH} characters"
            )
        return SigningKey(claims.key_id, secret.encode("utf-8"))
    if settings.temporal.address is not None:
        raise ClaimKeyError(
            "set ACCORD_CLAIMS__KEY (at least 32 characters, the same for every worker and "
            "entry point) to sign and verify actor claims"
        )
    path = settings.data_dir / KEY_FILE
    if not create and not path.exists():
        raise ClaimKeyError(
            f"no claim key in {path}: start the service once (`accord run`) or set "
            "ACCORD_CLAIMS__KEY"
        )
    return SigningKey(claims.key_id, _key_file(path))


def verifying_keys(settings: Settings) -> dict[str, bytes]:
    """The current key and the retired ones still accepted, by key ID."""
    current = signing_key(settings)
    keys = {
        key_id: secret.get_secret_value().encode("utf-8")
        for key_id, secret in settings.claims.previous_keys.items()
    }
    keys[current.key_id] = current.secret
    return keys


def _key_file(path: Path) -> bytes:
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under a temporary name, then linked in: a process reading it meanwhile
    # sees no file or the whole key, and of two processes starting together one key wins.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> bytes:
    secret = path.read_text(encoding="ascii").strip()
    if len(secret) < MIN_KEY_LENGTH:
        raise ClaimKeyError(f"{path}: the claim key is shorter than {MIN_KEY_LENGTH} characters")
    return secret.encode("ascii")
