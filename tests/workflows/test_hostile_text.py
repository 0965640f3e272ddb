"""Invisible format characters an officer types (or a plain Temporal client sends) never reach
a mail, the stored report, the task's status or the Web UI's details: on the time-skipping
server with the real activities, a real SQLite database and a real SMTP server."""

from __future__ import annotations

import json
import unicodedata
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from harness import harness, local_now, midnight, obligation_input
from pydantic import BaseModel
from sqlalchemy import select
from temporalio.client import WorkflowUpdateFailedError

from infra import db
from workflows.payloads import ExtensionRequest, SubmitReport, TaskStatus, UpdateResult

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE
PDF = "\u202c"  # POP DIRECTIONAL FORMATTING
LRI = "\u2066"  # LEFT-TO-RIGHT ISOLATE
ZWSP = "\u200b"  # ZERO WIDTH SPACE
ZWJ = "\u200d"  # ZERO WIDTH JOINER
WORD_JOINER = "\u2060"
BOM = "\ufeff"
HOSTILE = (RLO, PDF, LRI, ZWSP, ZWJ, WORD_JOINER, BOM)


def invisible(text: str) -> set[str]:
    """Format characters in `text`, found by their code points, not by Accord's helper."""
    return {c for c in text if 0x200B <= ord(c) <= 0x200F or 0x202A <= ord(c) <= 0x202E} | {
        c for c in text if 0x2060 <= ord(c) <= 0x2069 or ord(c) == 0xFEFF
    }


def whole_mail(message: EmailMessage) -> str:
    """Every header (decoded) and every text part of a message."""
    parts = [f"{name}: {value}" for name, value in message.items()]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            parts.append(part.get_content())
    return "\n".join(parts)


async def test_format_characters_from_a_plain_client_are_removed_everywhere(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        due = midnight(now.date() + timedelta(days=20))
        handle = await h.start_obligation(obligation_input(due_at=due))
        actor = h.actor("STP").model_dump(mode="json")
        # As a Temporal client sends them: JSON objects, not Accord's models, so nothing was
        # cleaned on the client's side; the claim is what Accord's entry point signs (over the
        # payload as the workflow reads it). "Nguyễn" is written with combining marks (NFD):
        # they are not format characters and stay.

        async def with_claim(update: str, model: type[BaseModel], raw: dict[str, Any]) -> Any:
            signed = await h.signed(handle, update, model.model_validate(raw))
            claim = getattr(signed, "claim")  # noqa: B009 - every signed payload has one
            return raw | {"claim": claim.model_dump(mode="json")}

        nguyen = unicodedata.normalize("NFD", "Nguyễn")
        reason = f"Chờ số liệu của {nguyen}{RLO}nọh gnôhk{PDF}{ZWSP}"
        request = {
            "actor": actor,
            "new_due": str((due + timedelta(days=5)).date()),
            "reason": reason,
        }
        await handle.execute_update(
            "request_extension",
            await with_claim("request_extension", ExtensionRequest, request),
            result_type=UpdateResult,
        )
        before = await handle.query("status", result_type=TaskStatus)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                "submit_report",
                {"actor": actor, "summary": "x", "attachments": ["javascript:alert(1)"]},
                result_type=UpdateResult,
            )
        assert "attachment scheme 'javascript' is not allowed" in str(refused.value.cause)
        assert await handle.query("status", result_type=TaskStatus) == before
        summary = f"Đã{ZWJ} tiếp {LRI}1.901{PDF} lượt{WORD_JOINER} công dân{BOM}."
        await handle.execute_update(
            "submit_report",
            await with_claim("submit_report", SubmitReport, {"actor": actor, "summary": summary}),
            result_type=UpdateResult,
        )
        status = await handle.query("status", result_type=TaskStatus)
        await handle.result()

        mails = h.mails()
        kinds = [str(m["X-Accord-Kind"]) for m in mails]
        assert "extension_requested" in kinds and "receipt" in kinds
        for message in mails:
            assert invisible(whole_mail(message)) == set(), message["Subject"]
        requested = next(m for m in mails if m["X-Accord-Kind"] == "extension_requested")
        # The reason arrives, with the combining marks of Nguyễn (NFD and NFC read the same).
        text = unicodedata.normalize("NFC", whole_mail(requested))
        assert "Chờ số liệu của Nguyễnnọh gnôhk" in text

        with h.sessions() as session:
            row = session.scalars(select(db.SubmissionRow)).one()
            assert row.summary == "Đã tiếp 1.901 lượt công dân."
            details = [a.detail for a in session.scalars(select(db.AuditRow))]
            assert all(invisible(json.dumps(d, ensure_ascii=False)) == set() for d in details)
        assert all(invisible(d.detail) == set() for d in status.decisions)
        assert any("Nguyễn" in unicodedata.normalize("NFC", d.detail) for d in status.decisions)
