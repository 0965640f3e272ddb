"""The claim module on its own: what the signature covers, key rotation, the key settings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from activities.models import Actor
from agreements.models import OfficerRole
from infra.claim_keys import verifying_keys
from infra.settings import Settings
from workflows import claims
from workflows.payloads import Waiver

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
OLD = b"o" * 32
NEW = b"n" * 32
ADMIN = Actor(
    officer_id="quan-tri-snv", tenant="quang-binh", agency="SNV", roles=[OfficerRole.ADMIN]
)


@pytest.fixture(autouse=True)
def _keys() -> Iterator[None]:
    saved = dict(claims._verifying_keys)
    yield
    claims.install_verifying_keys(saved)


def _signed(key_id: str, secret: bytes, **actor: object) -> Waiver:
    claim = claims.Claim(
        channel="cli", operator="van-hanh", request_id="req-0001", received_at=NOW, key_id=key_id
    )
    waiver = Waiver(actor=ADMIN.model_copy(update=actor), reason="Đã sáp nhập")
    return claims.sign(waiver, claim, update="waive", workflow_id="task:x", secret=secret)


def test_a_rotated_key_keeps_verifying_while_it_is_listed() -> None:
    waiver = _signed("k0", OLD)
    claims.install_verifying_keys({"k1": NEW, "k0": OLD})
    assert claims.verify(waiver, update="waive", workflow_id="task:x", now=NOW) == waiver.claim
    claims.install_verifying_keys({"k1": NEW})
    with pytest.raises(claims.ClaimRefused, match="unknown key 'k0'"):
        claims.verify(waiver, update="waive", workflow_id="task:x", now=NOW)


def test_the_signature_covers_every_field_of_the_actor_and_the_claim() -> None:
    claims.install_verifying_keys({"k1": NEW})
    waiver = _signed("k1", NEW)
    assert waiver.claim is not None
    changed = [
        waiver.model_copy(update={"actor": ADMIN.model_copy(update={"agency": "STP"})}),
        waiver.model_copy(update={"actor": ADMIN.model_copy(update={"roles": []})}),
        waiver.model_copy(update={"claim": waiver.claim.model_copy(update={"operator": "x"})}),
        waiver.model_copy(update={"claim": waiver.claim.model_copy(update={"channel": "portal"})}),
        waiver.model_copy(
            update={"claim": waiver.claim.model_copy(update={"received_at": NOW + timedelta(1)})}
        ),
        waiver.model_copy(
            update={"claim": waiver.claim.model_copy(update={"request_id": "req-0002"})}
        ),
    ]
    for payload in changed:
        with pytest.raises(claims.ClaimRefused, match="bad claim signature"):
            claims.verify(payload, update="waive", workflow_id="task:x", now=NOW)
    # The same bytes as JSON and back (what the worker decodes) still verify.
    again = Waiver.model_validate_json(waiver.model_dump_json())
    assert claims.verify(again, update="waive", workflow_id="task:x", now=NOW)


def test_previous_keys_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCORD_CLAIMS__KEY", "n" * 32)
    monkeypatch.setenv("ACCORD_CLAIMS__KEY_ID", "k1")
    monkeypatch.setenv("ACCORD_CLAIMS__PREVIOUS_KEYS", '{"k0": "' + "o" * 32 + '"}')
    settings = Settings()
    assert verifying_keys(settings) == {"k1": NEW, "k0": OLD}
    assert "nnnn" not in repr(settings)
