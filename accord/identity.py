"""Who acts through an entry point, and the signed claim that tells the workflow so.

The CLI acts only with an operator credential from settings (`ACCORD_CLAIMS__OPERATOR` and the
signing key); `--as OFFICER` then means "on behalf of that officer, by this operator". Each
update is stamped here, where Accord receives the request (channel, operator, a fresh request
ID, the instant of receipt), and signed over its whole payload (`workflows.claims`); the
workflow's validators verify it. `accord simulate` signs with a key of its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from infra.claim_keys import SigningKey
from workflows import claims


@dataclass(frozen=True)
class Credential:
    """An entry point's right to sign: who operates it and with which key."""

    operator: str | None
    key: SigningKey
    channel: claims.Channel = "cli"


P = TypeVar("P", bound=BaseModel)


def update_name(update: Any) -> str:
    """The name of an update, given as its method (`ObligationWorkflow.waive`) or a string."""
    defn = getattr(update, "_defn", None)
    name = getattr(defn, "name", None)
    return name if isinstance(name, str) else str(update)


def stamp(credential: Credential, *, received_at: datetime | None = None) -> claims.Claim:
    """A new request's claim, unsigned: now (or `received_at`), a fresh request ID."""
    return claims.Claim(
        channel=credential.channel,
        operator=credential.operator,
        request_id=uuid.uuid4().hex,
        received_at=received_at or datetime.now(UTC),
        key_id=credential.key.key_id,
    )


def signed(
    credential: Credential,
    payload: P,
    *,
    update: Any,
    workflow_id: str,
    received_at: datetime | None = None,
) -> P:
    """`payload` with a claim stamped now (or at `received_at`) and signed for `update` of
    `workflow_id`."""
    return claims.sign(
        payload,
        stamp(credential, received_at=received_at),
        update=update_name(update),
        workflow_id=workflow_id,
        secret=credential.key.secret,
    )
