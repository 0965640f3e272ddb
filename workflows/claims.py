"""Signed actor claims: who asks a workflow for something, vouched for by Accord's entry point.

An entry point (the CLI used by an operator, later the portal) authenticates whoever acts,
stamps the request (channel, operator, request ID, the instant it received the request) and
signs the whole update payload with HMAC-SHA256, keyed by a secret from settings. The
workflow's update validators verify the signature before any rule: an update whose actor was
made up or altered, that carries no claim, a claim for another update or workflow, or one
older than `MAX_DELIVERY_DELAY`, is refused, and a refused update leaves nothing in history.

Pure: the standard library and pydantic only, so workflow code imports it (passed through the
sandbox). The verifying keys live in this module, installed by the worker at start
(`install_verifying_keys`); validators do not run on replay, so rotating keys never breaks a
history.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

MAX_DELIVERY_DELAY = timedelta(minutes=5)
"""How long after its entry point received it a request is still accepted: Accord's own delay
between receiving a request and the workflow handling it (a worker catching up). An older
claim is refused (the officer sends again); the report's time is never taken from a client."""
CLOCK_SKEW = timedelta(minutes=1)
"""How far ahead of the workflow's clock a claim's `received_at` may be (hosts' clocks)."""
MIN_KEY_LENGTH = 32
"""Characters (bytes) of a signing key, at least."""

Channel = Literal["cli", "portal"]
_KEY_ID = r"^[A-Za-z0-9._-]{1,40}$"


class Claim(BaseModel):
    """What the entry point vouches for about one request (besides the payload's actor)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Channel = Field(description="The entry point: cli or portal.")
    operator: str | None = Field(
        default=None,
        max_length=100,
        description="Who acted on the officer's behalf (the CLI's operator ID); None: the "
        "officer himself (portal).",
    )
    request_id: str = Field(min_length=8, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")
    received_at: AwareDatetime = Field(description="When the entry point received the request.")
    key_id: str = Field(pattern=_KEY_ID, description="Which signing key; rotation keeps old IDs.")
    signature: str = Field(
        default="", max_length=64, description="HMAC-SHA256, hex, over `signed_bytes`."
    )

    @field_validator("received_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # One spelling in the signed bytes, however the sender's zone was written.
        return value.astimezone(UTC)


class ClaimRefused(ValueError):
    """A claim that does not vouch for its request, with the reason in both languages."""

    def __init__(self, *, vi: str, en: str) -> None:
        super().__init__(en)
        self.vi = vi
        self.en = en


_verifying_keys: dict[str, bytes] = {}


def install_verifying_keys(keys: Mapping[str, bytes]) -> None:
    """The keys validators accept, by key ID (the current one and those being retired); the
    worker sets them at start."""
    for key_id, secret in keys.items():
        if not re.fullmatch(_KEY_ID, key_id) or len(secret) < MIN_KEY_LENGTH:
            raise ValueError(f"claim key {key_id!r}: an ID of [A-Za-z0-9._-] and ≥ 32 bytes")
    _verifying_keys.clear()
    _verifying_keys.update(keys)


def signed_bytes(payload: BaseModel, *, update: str, workflow_id: str) -> bytes:
    """Canonical JSON of the update's name, its workflow and the whole payload (the actor with
    all its fields, the claim without its signature): what the signature covers."""
    data: dict[str, Any] = payload.model_dump(mode="json")
    claim = data.get("claim")
    if isinstance(claim, dict):
        claim.pop("signature", None)
    document = {"update": update, "workflow_id": workflow_id, "payload": data}
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def signature(secret: bytes, payload: BaseModel, *, update: str, workflow_id: str) -> str:
    return hmac.new(
        secret, signed_bytes(payload, update=update, workflow_id=workflow_id), hashlib.sha256
    ).hexdigest()


P = TypeVar("P", bound=BaseModel)


def sign(payload: P, claim: Claim, *, update: str, workflow_id: str, secret: bytes) -> P:
    """`payload` (which has a `claim` field) carrying `claim`, signed with `secret`."""
    unsigned = payload.model_copy(update={"claim": claim.model_copy(update={"signature": ""})})
    mac = signature(secret, unsigned, update=update, workflow_id=workflow_id)
    return payload.model_copy(update={"claim": claim.model_copy(update={"signature": mac})})


def verify(payload: BaseModel, *, update: str, workflow_id: str, now: datetime) -> Claim:
    """The payload's claim, if it vouches for this update of this workflow now; otherwise
    ClaimRefused. Uses the installed verifying keys."""
    claim = getattr(payload, "claim", None)
    if not isinstance(claim, Claim) or not claim.signature:
        raise ClaimRefused(
            vi="yêu cầu không có chữ ký của Accord (chỉ gửi qua CLI hoặc cổng thông tin)",
            en="unsigned request: updates come through Accord's CLI or portal, with a signed "
            "actor claim",
        )
    secret = _verifying_keys.get(claim.key_id)
    if secret is None:
        raise ClaimRefused(
            vi=f"khóa ký {claim.key_id!r} không được chấp nhận",
            en=f"claim signed with an unknown key {claim.key_id!r}",
        )
    expected = signature(secret, payload, update=update, workflow_id=workflow_id)
    if not hmac.compare_digest(expected, claim.signature):
        raise ClaimRefused(
            vi="chữ ký không khớp: người thực hiện hoặc nội dung yêu cầu đã bị thay đổi",
            en="bad claim signature: the actor or the request was altered",
        )
    if claim.channel == "cli" and not claim.operator:
        raise ClaimRefused(
            vi="yêu cầu qua CLI phải ghi người vận hành", en="a CLI claim must name its operator"
        )
    if claim.received_at > now + CLOCK_SKEW:
        raise ClaimRefused(
            vi="thời điểm nhận yêu cầu ở tương lai", en="the claim's received_at is in the future"
        )
    if claim.received_at < now - MAX_DELIVERY_DELAY:
        minutes = int(MAX_DELIVERY_DELAY.total_seconds() // 60)
        raise ClaimRefused(
            vi=f"yêu cầu đã quá {minutes} phút kể từ khi Accord nhận; hãy gửi lại",
            en=f"expired claim: received more than {minutes} minutes ago; send it again",
        )
    return claim


def received_time(claim: Claim, now: datetime) -> datetime:
    """When the request counts as made: the entry point's receipt, never after the handling."""
    return min(claim.received_at, now)
