"""Applying a succession file (`agreements.succession`): the directory in the database, then
the running agreements. Used by `accord succession apply`; usable by a simulation or a test
that applies a succession on its own server (`store_succession`, `send_succession`).

The directory's YAML file is never written: the database is what running services read, and
deploying the file again keeps what a succession stored (`infra.db.write_directory`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from agreements.succession import SuccessionFile, SuccessionGroup, apply_to_directory

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker
    from temporalio.client import Client

    from accord.identity import Credential
    from activities.models import Actor
    from workflows.payloads import ChangeResult

SUCCEED_UPDATE = "succeed"
"""The agreement workflow's update (`AgreementWorkflow.succeed`), by name."""


def store_succession(
    sessions: sessionmaker[Session],
    file: SuccessionFile,
    *,
    actor: Actor,
    operator: str,
    channel: str = "cli",
    at: datetime | None = None,
) -> bool:
    """The tenant's stored directory after `file`, with one audit entry
    (`directory_succession_applied`), in one transaction. False, writing nothing, when the
    database holds it already (the file was applied before). `LookupError` when no directory
    of the tenant is stored. Check the file first (`agreements.succession.check_succession`)."""
    from agreements.succession import succession_groups
    from infra import db

    with sessions() as session:
        before = db.stored_directory(session, tenant=file.tenant)
        if before is None:
            raise LookupError(file.tenant)
        after = apply_to_directory(file, before)
        if after == before:
            return False
        ids = ",".join(group.succession_id for group in succession_groups(file))
        db.write_directory(session, directory=after)
        db.add_audit_rows(
            session,
            rows=[
                {
                    "event_key": f"directory-succession/{file.tenant}/{ids}",
                    "at": at or datetime.now(UTC),
                    "agreement_id": "",
                    "tenant": file.tenant,
                    "actor": actor.officer_id,
                    "roles": [role.value for role in actor.roles],
                    "channel": channel,
                    "operator": operator,
                    "action": "directory_succession_applied",
                    "detail": {
                        "successions": ids,
                        "agencies_added": ",".join(a.code for a in file.agencies),
                        "agencies_ceasing": ",".join(
                            code for change in file.changes for code in change.from_
                        ),
                    },
                }
            ],
        )
        session.commit()
    return True


async def send_succession(
    client: Client,
    credential: Credential,
    agreement_id: str,
    group: SuccessionGroup,
    actor: Actor,
    *,
    received_at: datetime | None = None,
) -> ChangeResult:
    """The `succeed` update of one agreement's workflow, signed (received now, unless
    `received_at` says when). Raises what `execute_update` raises (a refusal:
    `WorkflowUpdateFailedError`)."""
    from accord.identity import signed
    from workflows.payloads import ChangeResult, SuccessionRequest, agreement_workflow_id

    workflow_id = agreement_workflow_id(agreement_id)
    request = signed(
        credential,
        SuccessionRequest(
            actor=actor,
            succession_id=group.succession_id,
            document=group.document,
            effective=group.effective,
            transfers=group.transfers,
        ),
        update=SUCCEED_UPDATE,
        workflow_id=workflow_id,
        received_at=received_at,
    )
    handle = client.get_workflow_handle(workflow_id)
    result: ChangeResult = await handle.execute_update(
        SUCCEED_UPDATE, request, result_type=ChangeResult
    )
    return result
