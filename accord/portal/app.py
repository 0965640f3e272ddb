"""The portal's FastAPI application: routers, static files, the session middleware, the
security headers and the error pages.

Every response carries the security headers (a CSP without inline script or style,
`frame-ancestors 'none'`, nosniff, no referrer: links carry tokens); every page but the static
files is `Cache-Control: no-store`. Errors are a page in the reader's language, never a
traceback.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.exceptions import HTTPException as StarletteHTTPException

from accord.portal import auth, deciders, health, officer
from accord.portal.context import PortalContext
from accord.portal.i18n import LANG_COOKIE, locale_of, t
from infra import db, links

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}

ERROR_TEXTS: dict[int, tuple[str, str, str, str]] = {
    400: (
        "Yêu cầu không hợp lệ",
        "Bad request",
        "Dữ liệu gửi lên không hợp lệ.",
        "The request was not valid.",
    ),
    401: (
        "Chưa đăng nhập",
        "Not signed in",
        "Hãy mở đường dẫn trong thư của Accord.",
        "Open the link in Accord's mail.",
    ),
    403: (
        "Không được phép",
        "Forbidden",
        "Bạn không có quyền xem trang này.",
        "You may not see this page.",
    ),
    404: ("Không tìm thấy", "Not found", "Không có trang này.", "There is no such page."),
    405: (
        "Không hỗ trợ",
        "Not allowed",
        "Trang này không nhận yêu cầu như vậy.",
        "This page does not take such a request.",
    ),
    413: ("Tệp quá lớn", "Too large", "Dữ liệu gửi lên quá lớn.", "What was sent is too large."),
    429: ("Quá nhiều yêu cầu", "Too many requests", "Hãy thử lại sau.", "Try again later."),
    500: (
        "Lỗi hệ thống",
        "Server error",
        "Accord gặp sự cố khi xử lý yêu cầu. Không có gì bị thay đổi; hãy thử lại sau.",
        "Accord ran into a problem with the request. Nothing was changed; try again later.",
    ),
}


def make_templates() -> Jinja2Templates:
    """The page templates: autoescaped whatever their extension, with the common values."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return Jinja2Templates(env=environment, context_processors=[_common_values])


def _common_values(request: Request) -> dict[str, Any]:
    locale = locale_of(request)
    token = auth.csrf_token(request)

    def csrf_field() -> Markup:
        return Markup('<input type="hidden" name="csrf" value="{}">').format(escape(token))

    def form_key_field() -> Markup:
        return Markup('<input type="hidden" name="form_key" value="{}">').format(
            secrets.token_urlsafe(24)
        )

    return {
        "lang": locale,
        "t": lambda vi, en: en if locale == "en" else vi,
        "csrf": token,
        "csrf_field": csrf_field,
        "form_key_field": form_key_field,
        "signed_in": getattr(request.state, "portal_session", None) is not None,
        "current_path": request.url.path,
    }


def create_app(ctx: PortalContext, sdk_metrics_address: str | None = None) -> FastAPI:
    """The portal's app; `sdk_metrics_address`: the Temporal SDK's exporter, whose metrics
    `/metrics` adds to Accord's (when `ACCORD_METRICS__PORTAL`)."""
    app = FastAPI(
        title="Accord",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.portal = ctx
    app.state.sdk_metrics_address = sdk_metrics_address
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(auth.router)
    app.include_router(officer.router)
    app.include_router(deciders.router)
    app.include_router(health.router)

    @app.middleware("http")
    async def session_and_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        new_anon = _load_session(ctx, request)
        try:
            response = await call_next(request)
        except Exception:
            log.exception("portal: %s %s failed", request.method, request.url.path)
            response = error_page(request, 500)
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        if new_anon is not None:
            auth.set_cookie(request, response, auth.ANON_COOKIE, new_anon)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        detail = error.detail if isinstance(error.detail, dict) else None
        response = error_page(request, error.status_code, detail)
        if error.headers:
            response.headers.update(error.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, error: RequestValidationError) -> Response:
        return error_page(request, 400)

    return app


def _load_session(ctx: PortalContext, request: Request) -> str | None:
    """Find the reader's session and CSRF token; a new anonymous cookie value when the reader
    has neither session nor anonymous cookie."""
    request.state.portal_session = None
    request.state.csrf = ""
    session_id = request.cookies.get(auth.SESSION_COOKIE)
    if session_id:
        with ctx.session_factory() as session:
            row = links.find_session(session, session_id, now=ctx.now())
            # The reader's language: the session's choice, else the officer's.
            officer = (
                session.get(db.OfficerRow, (row.tenant, row.officer_id))
                if row is not None and row.locale is None
                else None
            )
        if row is not None:
            request.state.portal_session = row
            request.state.csrf = links.keyed_hash(ctx.link_key, "csrf-session", session_id)
            chosen = row.locale or (officer.locale if officer is not None else None)
            if chosen in ("vi", "en"):
                request.state.locale = chosen
            return None
    anon = request.cookies.get(auth.ANON_COOKIE)
    new_anon = None
    if not anon or len(anon) > 100:
        anon = new_anon = secrets.token_urlsafe(24)
    request.state.csrf = links.keyed_hash(ctx.link_key, "csrf-anon", anon)
    if request.cookies.get(LANG_COOKIE) == "en":
        request.state.locale = "en"
    return new_anon


def error_page(
    request: Request, status_code: int, detail: dict[str, str] | None = None
) -> HTMLResponse:
    """The error page for `status_code`, in the reader's language."""
    title_vi, title_en, text_vi, text_en = ERROR_TEXTS.get(
        status_code, ERROR_TEXTS[500 if status_code >= 500 else 400]
    )
    if detail is not None and "vi" in detail and "en" in detail:
        text_vi, text_en = detail["vi"], detail["en"]
    try:
        return auth.render(
            request,
            "error.html.j2",
            {
                "status": status_code,
                "heading": t(request, title_vi, title_en),
                "message": t(request, text_vi, text_en),
            },
            status_code=status_code,
        )
    except Exception:  # a page that cannot render still must not show a traceback
        log.exception("portal: the error page failed")
        return HTMLResponse(
            f"<!doctype html><title>{status_code}</title><p>{escape(t(request, text_vi, text_en))}",
            status_code=status_code,
        )
