"""In a real browser (Debian's Chromium, driven by Playwright, offline): links that must not
sign anyone in — tampered, expired, revoked, an officer who left the directory — each show a
clear page and leave no session; a good link does, with the cookie's flags as the browser
sees them; the page loads nothing from elsewhere and breaks no CSP rule.

The portal is served by uvicorn on loopback (`serve_portal`, as `accord run` serves it), with
the time-skipping server, the real worker, SQLite and the SMTP sink behind it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from harness import TEST_CREDENTIAL, harness
from playwright.async_api import async_playwright, expect

from accord.identity import Credential
from accord.portal.app import make_templates
from accord.portal.auth import SESSION_COOKIE
from accord.portal.context import PortalContext
from accord.portal.server import serve_portal
from infra import db, links
from infra.settings import PortalSettings, Settings

TENANT = "quang-binh"
FOCAL = "dau-moi-stp"
LEAVER = "thu-truong-stp"


def chromium() -> str:
    """The system Chromium (as tests/test_web_ui.py finds it); skipped without it unless
    ACCORD_REQUIRE_BROWSER=1."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").is_file():
        found = "/usr/bin/chromium"
    if found is None:
        reason = "Chromium is not installed (Debian: `apt-get install chromium`)"
        if os.environ.get("ACCORD_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason}, and ACCORD_REQUIRE_BROWSER=1 requires the browser test")
        pytest.skip(reason)
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PortalContext]:
    tmp_path = tmp_path_factory.mktemp("portal-browser")
    port = free_port()
    async with harness(tmp_path) as h:
        settings = Settings(
            data_dir=tmp_path,
            portal=PortalSettings(port=port, base_url=f"http://127.0.0.1:{port}"),
        )
        ctx = PortalContext(
            settings=settings,
            client=h.env.client,
            session_factory=h.sessions,
            credential=Credential(operator=None, key=TEST_CREDENTIAL.key, channel="portal"),
            link_key=links.derive_link_key(TEST_CREDENTIAL.key.secret),
            templates=make_templates(),
            smtp=h.smtp,
        )
        stop, listening = asyncio.Event(), asyncio.Event()
        serving = asyncio.create_task(serve_portal(ctx, stop, listening))
        await asyncio.wait_for(listening.wait(), 30)
        try:
            yield ctx
        finally:
            stop.set()
            await serving


def issue(ctx: PortalContext, officer_id: str, *, now: datetime | None = None) -> str:
    with ctx.session_factory() as session:
        token = links.issue_link(
            session,
            tenant=TENANT,
            officer_id=officer_id,
            key=ctx.link_key,
            now=now or datetime.now(UTC),
            days=30,
        )
        session.commit()
    return ctx.link_url(token)


async def test_bad_links_in_a_real_browser(served: PortalContext, tmp_path: Path) -> None:
    ctx = served
    base = ctx.settings.portal.base_url
    good = issue(ctx, FOCAL)
    tampered = good[:-2] + ("xx" if not good.endswith("xx") else "yy")
    expired = issue(ctx, FOCAL, now=datetime.now(UTC) - timedelta(days=31))
    revoked = issue(ctx, "dau-moi-snv")
    leaver = issue(ctx, LEAVER)
    with ctx.session_factory() as session:
        links.revoke_officer_links(
            session, tenant=TENANT, officer_id="dau-moi-snv", now=datetime.now(UTC)
        )
        row = db.get_officer(session, tenant=TENANT, officer_id=LEAVER)
        assert row is not None
        row.active = False
        session.commit()

    cases = [
        (tampered, "Đường dẫn không hợp lệ (có thể đã bị sao chép thiếu hoặc bị sửa)."),
        (expired, "Đường dẫn đã hết hạn."),
        (revoked, "Đường dẫn đã bị thu hồi."),
        (leaver, "người nhận không còn trong danh bạ cơ quan"),
    ]
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium())
            context = await browser.new_context(viewport={"width": 360, "height": 780})
            page = await context.new_page()
            outside: list[str] = []
            problems: list[str] = []
            page.on(
                "request",
                lambda request: (
                    None if request.url.startswith(base) else outside.append(request.url)
                ),
            )
            page.on(
                "console",
                lambda message: problems.append(message.text) if message.type == "error" else None,
            )
            for url, text in cases:
                response = await page.goto(url)
                assert response is not None and response.status == 403
                await expect(
                    page.get_by_role("heading", name="Đường dẫn không dùng được")
                ).to_be_visible()
                await expect(page.get_by_role("alert")).to_contain_text(text)
                assert not [c for c in await context.cookies() if c["name"] == SESSION_COOKIE]
            # The way out: ask for a new link, by keyboard.
            await page.get_by_role("link", name="Xin đường dẫn mới").focus()
            await page.keyboard.press("Enter")
            await expect(page.get_by_label("Địa chỉ thư")).to_be_visible()
            await page.screenshot(path=str(tmp_path / "link-refused-360.png"), full_page=True)

            # A good link signs in: an HttpOnly, SameSite=Lax session cookie.
            await page.goto(good)
            cookies = [c for c in await context.cookies() if c["name"] == SESSION_COOKIE]
            assert [(c["httpOnly"], c["sameSite"], c["secure"]) for c in cookies] == [
                (True, "Lax", False)
            ]
            # The language button switches the page to English.
            await page.goto(f"{base}/link")
            await page.get_by_role("button", name="English").click()
            await expect(page.get_by_role("heading", name="Ask for a new link")).to_be_visible()
            assert outside == []
            # No CSP violation (the error statuses of refused links are expected).
            assert [p for p in problems if "Failed to load resource" not in p] == []
            await browser.close()
    finally:
        with ctx.session_factory() as session:
            row = db.get_officer(session, tenant=TENANT, officer_id=LEAVER)
            assert row is not None
            row.active = True
            session.commit()
