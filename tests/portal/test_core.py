"""The portal's core: signed links and sessions, CSRF, security headers, error pages, the
new-link request and its rate limit, and `engine.act` (one path into the engine, once per form).

Real parts: the time-skipping Temporal server, the real worker, SQLite and the .eml SMTP sink
(tests/workflows/harness.py); the portal app is driven over ASGI by httpx, in the test's
event loop (where the Temporal client lives).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
import pytest_asyncio
from fastapi import Depends, FastAPI, Form, Request
from harness import (
    TEST_CREDENTIAL,
    Harness,
    harness,
    local_now,
    midnight,
    obligation_input,
)
from sqlalchemy import select

from accord.identity import Credential
from accord.portal.app import create_app, make_templates
from accord.portal.auth import ANON_COOKIE, SESSION_COOKIE, CurrentOfficer, require_csrf
from accord.portal.context import PortalContext, portal_context
from accord.portal.engine import act
from infra import db, links
from infra.settings import PortalSettings, Settings
from workflows.obligation import ObligationWorkflow
from workflows.payloads import SubmitReport, TaskState

TENANT = "quang-binh"
FOCAL = "dau-moi-stp"
FOCAL_EMAIL = "dau-moi.stp@quangbinh.example"
HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


@dataclass
class Portal:
    h: Harness
    ctx: PortalContext
    app: FastAPI

    def client(self, ip: str = "192.0.2.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    def link(self, officer_id: str = FOCAL, *, days: int = 30, **kwargs: Any) -> str:
        with self.h.sessions() as session:
            token = links.issue_link(
                session,
                tenant=TENANT,
                officer_id=officer_id,
                key=self.ctx.link_key,
                now=kwargs.pop("now", datetime.now(UTC)),
                days=days,
                **kwargs,
            )
            session.commit()
        return token


def _test_routes(app: FastAPI) -> None:
    """Routes that only tests have: who is signed in, a failing page, a submit form."""

    @app.get("/_me")
    def me(officer: CurrentOfficer) -> dict[str, str]:
        return {
            "id": officer.actor.officer_id,
            "agency": officer.agency_name,
            "lang": officer.locale,
        }

    @app.get("/_boom")
    def boom() -> None:
        raise RuntimeError("secret-internal-detail")

    @app.post("/_submit", dependencies=[Depends(require_csrf)])
    async def submit(
        request: Request,
        officer: CurrentOfficer,
        task: Annotated[str, Form()],
        form_key: Annotated[str, Form()],
    ) -> dict[str, Any]:
        ctx = portal_context(request)
        payload = SubmitReport(actor=officer.actor, summary="Báo cáo qua cổng thông tin.")
        outcome = await act(ctx, officer, task, ObligationWorkflow.submit_report, payload, form_key)
        return {"ok": outcome.ok, "message": outcome.message}


def make_portal(h: Harness, tmp_path: Path, **portal: Any) -> Portal:
    settings = Settings(data_dir=tmp_path, portal=PortalSettings(**portal))
    ctx = PortalContext(
        settings=settings,
        client=h.env.client,
        session_factory=h.sessions,
        credential=Credential(operator=None, key=TEST_CREDENTIAL.key, channel="portal"),
        link_key=links.derive_link_key(TEST_CREDENTIAL.key.secret),
        templates=make_templates(),
        smtp=h.smtp,
    )
    app = create_app(ctx)
    _test_routes(app)
    return Portal(h, ctx, app)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def portal(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Portal]:
    tmp_path = tmp_path_factory.mktemp("portal")
    async with harness(tmp_path) as h:
        yield make_portal(h, tmp_path)


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


def _main(page: str) -> str:
    found = re.search(r"<main.*?</main>", page, re.S)
    assert found is not None
    return found.group(0)


def _assert_headers(response: httpx.Response) -> None:
    for name, value in HEADERS.items():
        assert response.headers[name] == value, (response.url, name)


async def test_a_link_opens_a_session_with_safe_cookie_flags(portal: Portal) -> None:
    token = portal.link(task_id="test-2025/bao-cao-6-thang/STP/2025-6t")
    async with portal.client() as client:
        response = await client.get(f"/l/{token}")
        assert response.status_code == 303
        # The link's task page, on this site.
        assert response.headers["location"] == "/tasks/test-2025/bao-cao-6-thang/STP/2025-6t"
        _assert_headers(response)
        cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
        )
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=lax", "path=/"} <= attributes
        assert "secure" not in attributes  # served over http
        session_id = cookie.split(";")[0].split("=", 1)[1]
        me = await client.get("/_me")
        assert me.json() == {"id": FOCAL, "agency": "Sở Tư pháp", "lang": "vi"}
        assert me.headers["cache-control"] == "no-store"
    # Only the ID's hash is stored.
    with portal.h.sessions() as session:
        rows = session.scalars(select(db.PortalSessionRow)).all()
        assert links.session_hash(session_id) in {r.id_hash for r in rows}
        assert session_id not in {r.id_hash for r in rows}
    # The token carries no personal data: a random ID and its MAC.
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}", token)


async def test_secure_cookie_when_the_portal_is_served_over_https(
    portal: Portal, tmp_path: Path
) -> None:
    secure = make_portal(portal.h, tmp_path, base_url="https://congvu.quangbinh.example")
    token = secure.link()
    async with secure.client() as client:
        response = await client.get(f"/l/{token}")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
    )
    assert "secure" in {part.strip().lower() for part in cookie.split(";")[1:]}


@pytest.mark.parametrize(
    ("case", "reason", "text"),
    [
        ("tampered", "tampered", "Đường dẫn không hợp lệ (có thể đã bị sao chép thiếu"),
        ("other_key", "tampered", "Đường dẫn không hợp lệ (có thể đã bị sao chép thiếu"),
        ("unknown", "unknown", "Đường dẫn không hợp lệ."),
        ("expired", "expired", "Đường dẫn đã hết hạn."),
        ("revoked", "revoked", "Đường dẫn đã bị thu hồi."),
        ("officer_gone", "officer_gone", "người nhận không còn trong danh bạ cơ quan"),
        # An officer ID is looked up in the link's tenant only: Nghệ An has no dau-moi-stp.
        ("other_tenant", "officer_gone", "người nhận không còn trong danh bạ cơ quan"),
    ],
)
async def test_a_bad_link_is_a_clear_page_and_no_session(
    portal: Portal, case: str, reason: str, text: str
) -> None:
    officer = "thu-truong-stp" if case == "officer_gone" else FOCAL
    if case == "expired":
        token = portal.link(now=datetime.now(UTC) - timedelta(days=31))
    elif case == "other_tenant":
        with portal.h.sessions() as session:
            token = links.issue_link(
                session,
                tenant="nghe-an",
                officer_id=FOCAL,
                key=portal.ctx.link_key,
                now=datetime.now(UTC),
                days=30,
            )
            session.commit()
    else:
        token = portal.link(officer)
    if case == "tampered":
        token = token[:-1] + ("A" if token[-1] != "A" else "B")
    elif case == "other_key":
        link_id = token.split(".")[0]
        token = links.token_for(link_id, key=b"another deployment's key 0123456789")
    elif case == "unknown":
        token = links.token_for("A" * 22, key=portal.ctx.link_key)
    elif case == "revoked":
        with portal.h.sessions() as session:
            count = links.revoke_officer_links(
                session, tenant=TENANT, officer_id=FOCAL, now=datetime.now(UTC)
            )
            session.commit()
        assert count >= 1
    elif case == "officer_gone":
        with portal.h.sessions() as session:
            row = db.get_officer(session, tenant=TENANT, officer_id=officer)
            assert row is not None
            row.active = False
            session.commit()
    try:
        async with portal.client() as client:
            response = await client.get(f"/l/{token}")
            assert response.status_code == 403
            _assert_headers(response)
            assert f'data-reason="{reason}"' in response.text
            assert text in response.text
            assert 'href="/link"' in response.text
            assert not any(
                c.startswith(SESSION_COOKIE) for c in response.headers.get_list("set-cookie")
            )
            assert (await client.get("/_me")).status_code == 401
    finally:
        if case == "officer_gone":
            with portal.h.sessions() as session:
                row = db.get_officer(session, tenant=TENANT, officer_id=officer)
                assert row is not None
                row.active = True
                session.commit()


async def test_leaving_the_directory_or_revocation_ends_an_open_session(portal: Portal) -> None:
    async with portal.client() as client:
        assert (await client.get(f"/l/{portal.link('thu-truong-stp')}")).status_code == 303
        assert (await client.get("/_me")).json()["id"] == "thu-truong-stp"
        with portal.h.sessions() as session:
            links.revoke_officer_links(
                session, tenant=TENANT, officer_id="thu-truong-stp", now=datetime.now(UTC)
            )
            session.commit()
        response = await client.get("/_me")
        assert response.status_code == 401
        assert "Bạn chưa đăng nhập hoặc phiên làm việc đã hết hạn" in response.text


async def test_csrf_is_required_on_every_post(portal: Portal) -> None:
    async with portal.client() as client:
        await client.get(f"/l/{portal.link()}")
        page = await client.get("/link")
        token = _csrf(page.text)
        for form in ({}, {"csrf": "x" * 64}, {"csrf": token + "0"}):
            refused = await client.post("/logout", data=form)
            assert refused.status_code == 403
            assert "Biểu mẫu đã hết hạn hoặc không đến từ trang của Accord" in refused.text
            _assert_headers(refused)
        # Still signed in: nothing changed.
        assert (await client.get("/_me")).status_code == 200
        # Another reader's token (another session) is refused too.
        async with portal.client() as other:
            await other.get(f"/l/{portal.link()}")
            foreign = _csrf((await other.get("/link")).text)
        assert foreign != token
        assert (await client.post("/logout", data={"csrf": foreign})).status_code == 403
        out = await client.post("/logout", data={"csrf": token})
        assert out.status_code == 303
        assert out.headers["location"] == "/link?signed_out=1"
        assert "Bạn đã đăng xuất." in (await client.get(out.headers["location"])).text
        assert (await client.get("/_me")).status_code == 401


async def test_language_switch_and_no_open_redirect(portal: Portal) -> None:
    async with portal.client() as client:
        token = _csrf((await client.get("/link")).text)
        assert client.cookies.get(ANON_COOKIE)
        for target, expected in [
            ("//evil.example/x", "/"),
            ("https://evil.example/", "/"),
            ("/\\evil.example", "/"),
            ("/link", "/link"),
        ]:
            response = await client.post(
                "/lang", data={"csrf": token, "lang": "en", "next": target}
            )
            assert response.status_code == 303
            assert response.headers["location"] == expected
        page = await client.get("/link")
        assert "<h1>Ask for a new link</h1>" in page.text
        assert '<html lang="en">' in page.text
        missing = await client.get("/nowhere")
        assert missing.status_code == 404
        assert "There is no such page." in missing.text
        _assert_headers(missing)


async def test_an_error_is_a_page_never_a_traceback(portal: Portal) -> None:
    async with portal.client() as client:
        await client.get(f"/l/{portal.link()}")
        csrf = _csrf((await client.get("/link")).text)
        # A form without its fields: 400, the page, not FastAPI's JSON.
        bad = await client.post("/_submit", data={"csrf": csrf})
        assert bad.status_code == 400
        assert bad.headers["content-type"].startswith("text/html")
        assert "<h1>Yêu cầu không hợp lệ</h1>" in bad.text and "form_key" not in bad.text
        _assert_headers(bad)
        wrong = await client.get("/logout")
        assert wrong.status_code == 405
        assert "Trang này không nhận yêu cầu như vậy." in wrong.text
        response = await client.get("/_boom")
    assert response.status_code == 500
    _assert_headers(response)
    assert "Accord gặp sự cố khi xử lý yêu cầu. Không có gì bị thay đổi" in response.text
    assert "Traceback" not in response.text
    assert "secret-internal-detail" not in response.text
    assert "RuntimeError" not in response.text
    static = await portal.client().get("/static/portal.css")
    assert static.status_code == 200 and "max-width: 40rem" in static.text
    _assert_headers(static)


async def test_new_link_request_same_answer_rate_limited_and_mailed(portal: Portal) -> None:
    async with portal.client(ip="198.51.100.7") as client:
        token = _csrf((await client.get("/link")).text)
        known = await client.post("/link", data={"csrf": token, "email": FOCAL_EMAIL.upper()})
        unknown = await client.post(
            "/link", data={"csrf": token, "email": "nobody@quangbinh.example"}
        )
        assert known.status_code == unknown.status_code == 200
        assert _main(known.text) == _main(unknown.text)
        assert "Nếu địa chỉ này có trong danh bạ, Accord đã gửi một đường dẫn mới" in known.text
        # The mail reached the sink, with a link that opens a session.
        mails = [m for m in portal.h.mails() if str(m["To"]) == FOCAL_EMAIL]
        assert [str(m["Subject"]) for m in mails] == ["Accord: đường dẫn mới vào cổng thông tin"]
        body = mails[0].get_body(preferencelist=("plain",))
        assert body is not None
        found = re.search(r"http://127\.0\.0\.1:8000/l/(\S+)", body.get_content())
        assert found is not None
        async with portal.client() as reader:
            opened = await reader.get(f"/l/{found.group(1)}")
            assert opened.status_code == 303
            assert (await reader.get("/_me")).json()["id"] == FOCAL
        # The client's limit: 5 an hour (this client asked twice already).
        answers = [
            (await client.post("/link", data={"csrf": token, "email": FOCAL_EMAIL})).status_code
            for _ in range(4)
        ]
        assert answers == [200, 200, 200, 429]
        limited = await client.post("/link", data={"csrf": token, "email": "x@example.org"})
        assert limited.status_code == 429
        assert "Đã có quá nhiều yêu cầu" in limited.text
    assert len([m for m in portal.h.mails() if str(m["To"]) == FOCAL_EMAIL]) == 4

    async def ask(ip: str, address: str) -> int:
        async with portal.client(ip=ip) as client:
            token = _csrf((await client.get("/link")).text)
            response = await client.post("/link", data={"csrf": token, "email": address})
            return response.status_code

    # The address's limit: 5 an hour, from whichever client; other addresses still may.
    assert await ask("198.51.100.9", FOCAL_EMAIL) == 200
    assert await ask("198.51.100.10", FOCAL_EMAIL) == 429
    assert await ask("198.51.100.10", "x@example.org") == 200
    assert len([m for m in portal.h.mails() if str(m["To"]) == FOCAL_EMAIL]) == 5
    # No address is stored, only keyed hashes.
    with portal.h.sessions() as session:
        keys = session.scalars(select(db.LinkRequestRow.key)).all()
    assert keys and not any("@" in key for key in keys)


async def test_act_runs_once_per_form_and_shows_refusals(portal: Portal) -> None:
    h = portal.h
    now = await local_now(h.env)
    handle = await h.start_obligation(
        obligation_input(due_at=midnight(now.date() + timedelta(days=20)), task_suffix="-act")
    )
    task_id = handle.id.removeprefix("task:")
    async with portal.client() as other, portal.client() as client:
        # An officer of another agency: refused by the workflow's validator, in Vietnamese.
        await other.get(f"/l/{portal.link('dau-moi-snv')}")
        csrf = _csrf((await other.get("/link")).text)
        refused = await other.post(
            "/_submit", data={"csrf": csrf, "task": task_id, "form_key": "f" * 24}
        )
        assert refused.json()["ok"] is False
        assert "STP" in refused.json()["message"] and "Traceback" not in refused.text

        await client.get(f"/l/{portal.link()}")
        csrf = _csrf((await client.get("/link")).text)
        form = {"csrf": csrf, "task": task_id, "form_key": "k" * 24}
        first = await client.post("/_submit", data=form)
        second = await client.post("/_submit", data=form)
    assert first.json() == second.json()
    assert first.json()["ok"] is True
    status = await handle.query(ObligationWorkflow.status)
    assert status.state is TaskState.DONE_ON_TIME
    submitted = [d for d in status.decisions if d.kind == "submitted"]
    assert [(d.actor, d.channel, d.operator) for d in submitted] == [(FOCAL, "portal", None)]
    with h.sessions() as session:
        rows = session.scalars(
            select(db.SubmissionRow).where(db.SubmissionRow.task_id == task_id)
        ).all()
        audit = session.scalars(
            select(db.AuditRow).where(db.AuditRow.task_id == task_id, db.AuditRow.actor == FOCAL)
        ).all()
    assert len(rows) == 1
    assert {(a.channel, a.operator) for a in audit} == {("portal", None)}


async def test_a_double_click_submits_once(portal: Portal) -> None:
    h = portal.h
    now = await local_now(h.env)
    handle = await h.start_obligation(
        obligation_input(due_at=midnight(now.date() + timedelta(days=20)), task_suffix="-twice")
    )
    task_id = handle.id.removeprefix("task:")
    async with portal.client() as client:
        await client.get(f"/l/{portal.link()}")
        csrf = _csrf((await client.get("/link")).text)
        form = {"csrf": csrf, "task": task_id, "form_key": "d" * 24}
        # Both posts reach the engine together: the update ID (the form key) runs it once.
        first, second = await asyncio.gather(
            client.post("/_submit", data=form), client.post("/_submit", data=form)
        )
    assert first.json() == second.json()
    assert first.json()["ok"] is True
    status = await handle.query(ObligationWorkflow.status)
    assert [d.actor for d in status.decisions if d.kind == "submitted"] == [FOCAL]
    with h.sessions() as session:
        rows = session.scalars(
            select(db.SubmissionRow).where(db.SubmissionRow.task_id == task_id)
        ).all()
    assert len(rows) == 1


async def test_the_readers_language_officer_locale_then_his_choice(portal: Portal) -> None:
    officer = "dau-moi-ubnd-tinh"
    with portal.h.sessions() as session:
        row = db.get_officer(session, tenant=TENANT, officer_id=officer)
        assert row is not None
        row.locale = "en"
        session.commit()
    async with portal.client() as client:
        await client.get(f"/l/{portal.link(officer)}")
        assert (await client.get("/_me")).json()["lang"] == "en"
        page = await client.get("/link")
        assert '<html lang="en">' in page.text
        # Even a page refused before the officer is looked up speaks his language.
        refused = await client.post("/logout", data={"csrf": "wrong"})
        assert "The form has expired or did not come from Accord&#39;s page." in refused.text
        # His choice wins over the directory's.
        switched = await client.post(
            "/lang", data={"csrf": _csrf(page.text), "lang": "vi", "next": "/_me"}
        )
        assert switched.headers["location"] == "/_me"
        assert (await client.get("/_me")).json()["lang"] == "vi"
        assert '<html lang="vi">' in (await client.get("/link")).text
