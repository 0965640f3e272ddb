"""The task page offers the deciders' forms where they apply (httpx on the ASGI app, in the
test's event loop with the time-skipping server, the real worker and SQLite, as
test_deciders_pages.py): the approver sees the approve/reject form while an extension request
is pending and deciding from it approves; a focal point does not see it; an admin sees the
waiver form on an open task, a focal point does not."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from harness import ROOT, ZONE, harness
from test_deciders_pages import AGREEMENT, ID, _wait_open, portal, tuesday_from

from accord.deploy import deploy_loaded
from agreements.loader import load_agreement
from workflows.obligation import ObligationWorkflow
from workflows.payloads import ExtensionRequest, TaskStatus, task_workflow_id

DECIDE = '<h2 id="decide">'
WAIVE = '<h2 id="waive">'


async def test_the_task_page_offers_the_deciders_forms(tmp_path: Path) -> None:
    (tmp_path / "directory.yaml").write_text(
        (ROOT / "tests" / "agreements" / "forms" / "directory.yaml").read_text()
    )
    async with harness(tmp_path, directory_path=tmp_path / "directory.yaml") as h:
        today = (await h.env.get_current_time()).astimezone(ZONE).date()
        due = tuesday_from(today + timedelta(days=21))
        start = today - timedelta(days=60)
        (tmp_path / "agreement.yaml").write_text(
            AGREEMENT.format(
                id=ID,
                start=start.isoformat(),
                end=(start + timedelta(days=364)).isoformat(),
                due=due.isoformat(),
                due2=tuesday_from(today + timedelta(days=35)).isoformat(),
            )
        )
        await deploy_loaded(
            h.env.client,
            load_agreement(tmp_path / "agreement.yaml"),
            session_factory=h.sessions,
            task_queue=h.task_queue,
        )
        facts = await _wait_open(h)
        stp = next(
            t.task_id
            for t in facts.tasks
            if (t.obligation_id, t.agency) == ("bao-cao-dan-van", "STP")
        )
        handle: Any = h.env.client.get_workflow_handle_for(
            ObligationWorkflow.run, task_workflow_id(stp)
        )

        async def status() -> TaskStatus:
            result: TaskStatus = await handle.query(ObligationWorkflow.status)
            return result

        page_path = f"/tasks/{stp}"
        async with portal(h, tmp_path) as (_ctx, reader):
            # No request pending: nobody is offered the decide form, not even the approver.
            async with reader("tinh-mau", "giam-doc-snv") as head:
                page = await head.get(page_path)
                assert page.status_code == 200, page.text
                assert DECIDE not in page.text
                assert WAIVE not in page.text

            new_due = due + timedelta(days=7)
            await h.update(
                handle,
                ObligationWorkflow.request_extension,
                ExtensionRequest(
                    actor=h.actor("STP"), new_due=new_due, reason="Chờ số liệu quý IV"
                ),
            )

            # The owing agency's focal point (who asked) and the receiving agency's focal point
            # see the task, the request, and neither form.
            for focal_id in ("dau-moi-stp", "dau-moi-snv"):
                async with reader("tinh-mau", focal_id) as focal:
                    page = await focal.get(page_path)
                    assert page.status_code == 200, page.text
                    assert "Chờ số liệu quý IV" in page.text
                    assert DECIDE not in page.text
                    assert f'action="/tasks/{stp}/decide"' not in page.text
                    assert WAIVE not in page.text
                    assert f'action="/tasks/{stp}/waive"' not in page.text

            # The admin: the waiver form on the open task (fields of its own on the page).
            async with reader("tinh-mau", "quan-tri") as admin:
                page = await admin.get(page_path)
                assert page.status_code == 200, page.text
                assert WAIVE in page.text
                assert f'action="/tasks/{stp}/waive"' in page.text
                assert 'id="reason-waive"' in page.text
                assert page.text.count('id="reason"') <= 1

            # The approver (head of SNV, the receiving agency): the decide form; posting it
            # from the task page approves, and the page then offers it no more.
            async with reader("tinh-mau", "giam-doc-snv") as head:
                page = await head.get(page_path)
                assert DECIDE in page.text
                assert f'action="/tasks/{stp}/decide"' in page.text
                assert 'id="note-decide"' in page.text
                assert WAIVE not in page.text
                decided = await head.post(
                    f"/tasks/{stp}/decide",
                    {"decision": "approve", "note": "Đồng ý"},
                    csrf_from=page_path,
                )
                assert decided.status_code == 200, decided.text
                after = await status()
                assert after.pending_extension is None
                assert after.due_at is not None
                assert after.due_at.astimezone(ZONE).date() == new_due
                assert DECIDE not in (await head.get(page_path)).text
