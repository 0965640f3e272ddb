"""Signing in by link, the session, CSRF, the new-link request, logout and the language.

`GET /l/{token}` checks the link (`infra.links.check_link`) and opens a server-side session:
the cookie holds a random session ID (HttpOnly, SameSite=Lax, Secure when the portal's base
URL is https), the database its hash. `current_officer` is the dependency of every signed-in
page: it finds the session (the middleware in `app.py` read the cookie) and checks, on every
request, that the officer is still active in his tenant's directory. `require_csrf` guards
every POST: the form's hidden `csrf` field must be the token bound to the reader's session (or,
before signing in, to the reader's anonymous cookie).
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from accord.portal.context import portal_context, safe_path, task_path
from accord.portal.i18n import LANG_COOKIE, Locale, locale_of, t
from activities.models import Actor
from agreements.models import OfficerRole
from infra import db, links

log = logging.getLogger(__name__)

router = APIRouter()

SESSION_COOKIE = "accord_session"
ANON_COOKIE = "accord_anon"


@dataclass(frozen=True)
class PortalOfficer:
    """The signed-in officer, as the directory knows him now."""

    actor: Actor
    name: str
    email: str
    locale: Locale
    agency_name: str


class PageError(HTTPException):
    """An error page with a message of our own, in both languages."""

    def __init__(self, status_code: int, *, vi: str, en: str) -> None:
        super().__init__(status_code, detail={"vi": vi, "en": en})


def _not_signed_in() -> PageError:
    return PageError(
        401,
        vi="Bạn chưa đăng nhập hoặc phiên làm việc đã hết hạn. Hãy mở đường dẫn trong thư "
        "gần nhất của Accord, hoặc xin một đường dẫn mới.",
        en="You are not signed in, or your session has expired. Open the link in Accord's "
        "latest mail, or ask for a new link.",
    )


def current_officer(request: Request) -> PortalOfficer:
    """The officer of the request's session; a 401 page without a valid session or when the
    officer has left the directory."""
    ctx = portal_context(request)
    row = getattr(request.state, "portal_session", None)
    if row is None:
        raise _not_signed_in()
    with ctx.session_factory() as session:
        officer = db.get_officer(session, tenant=row.tenant, officer_id=row.officer_id)
        if officer is None or not officer.active:
            links.end_officer_sessions(
                session, tenant=row.tenant, officer_id=row.officer_id, now=ctx.now()
            )
            session.commit()
            request.state.portal_session = None
            raise _not_signed_in()
        names = db.agency_names(session, tenant=officer.tenant, codes={officer.agency_code})
    chosen = row.locale or officer.locale
    locale: Locale = "en" if chosen == "en" else "vi"
    request.state.locale = locale
    return PortalOfficer(
        actor=Actor(
            officer_id=officer.id,
            tenant=officer.tenant,
            agency=officer.agency_code,
            roles=[OfficerRole(role) for role in officer.roles],
        ),
        name=officer.name,
        email=officer.email,
        locale=locale,
        agency_name=names.get(officer.agency_code, officer.agency_code),
    )


def csrf_token(request: Request) -> str:
    """The CSRF token of the reader: bound to his session, or to his anonymous cookie."""
    token: str = getattr(request.state, "csrf", "")
    return token


async def require_csrf(request: Request) -> None:
    """Every POST's guard: the form's `csrf` field is the reader's token; else a 403 page."""
    form = await request.form()
    sent = form.get("csrf")
    expected = csrf_token(request)
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
        raise PageError(
            403,
            vi="Biểu mẫu đã hết hạn hoặc không đến từ trang của Accord. Hãy tải lại trang "
            "và gửi lại.",
            en="The form has expired or did not come from Accord's page. Reload the page and "
            "send it again.",
        )


CurrentOfficer = Annotated[PortalOfficer, Depends(current_officer)]
Csrf = Depends(require_csrf)


# --------------------------------------------------------------------------------------------
# Routes

REFUSALS: dict[str, tuple[str, str]] = {
    "tampered": (
        "Đường dẫn không hợp lệ (có thể đã bị sao chép thiếu hoặc bị sửa).",
        "This link is not valid (it may have been copied incompletely or altered).",
    ),
    "unknown": (
        "Đường dẫn không hợp lệ.",
        "This link is not valid.",
    ),
    "expired": (
        "Đường dẫn đã hết hạn.",
        "This link has expired.",
    ),
    "revoked": (
        "Đường dẫn đã bị thu hồi.",
        "This link has been revoked.",
    ),
    "officer_gone": (
        "Đường dẫn không còn hiệu lực: người nhận không còn trong danh bạ cơ quan.",
        "This link no longer works: its recipient is no longer in the agency directory.",
    ),
}


@router.get("/l/{token}", response_class=HTMLResponse)
def open_link(request: Request, token: str) -> Response:
    ctx = portal_context(request)
    now = ctx.now()
    with ctx.session_factory() as session:
        checked = links.check_link(session, token, key=ctx.link_key, now=now)
        if isinstance(checked, links.LinkRefusal):
            vi, en = REFUSALS[checked.reason]
            return render(
                request,
                "link_refused.html.j2",
                {"reason": checked.reason, "message": t(request, vi, en)},
                status_code=403,
            )
        session_id, _ = links.open_session(
            session, checked, now=now, hours=ctx.settings.portal.session_hours
        )
        session.commit()
    target = safe_path(task_path(checked.task_id) if checked.task_id else "/")
    response = RedirectResponse(target, status_code=303)
    set_cookie(request, response, SESSION_COOKIE, session_id)
    return response


@router.get("/link", response_class=HTMLResponse)
def link_form(request: Request) -> Response:
    return render(request, "link_request.html.j2", {"sent": False})


@router.post("/link", response_class=HTMLResponse, dependencies=[Csrf])
async def link_request(
    request: Request, email: Annotated[str, Form(max_length=254)] = ""
) -> Response:
    from accord.portal.mailer import send_new_link

    ctx = portal_context(request)
    address = email.strip().lower()
    client = request.client.host if request.client else "unknown"
    now = ctx.now()
    with ctx.session_factory() as session:
        allowed = links.allow_link_request(
            session,
            keys=[
                "addr:" + links.keyed_hash(ctx.link_key, "address", address)[:64],
                "ip:" + links.keyed_hash(ctx.link_key, "client", client)[:64],
            ],
            now=now,
            per_hour=ctx.settings.portal.link_requests_per_hour,
        )
        session.commit()
    if not allowed:
        return render(request, "link_request.html.j2", {"sent": False, "limited": True}, 429)
    if address:
        try:
            await send_new_link(ctx, address, now=now)
        except Exception:  # the answer must not tell whether the address is known
            log.exception("sending a new portal link failed")
    return render(request, "link_request.html.j2", {"sent": True})


@router.post("/logout", dependencies=[Csrf])
def logout(request: Request) -> Response:
    ctx = portal_context(request)
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        with ctx.session_factory() as session:
            links.end_session(session, session_id, now=ctx.now())
            session.commit()
    response = RedirectResponse("/link?signed_out=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/lang", dependencies=[Csrf])
def switch_language(
    request: Request,
    lang: Annotated[str, Form()] = "vi",
    next: Annotated[str, Form()] = "/",
) -> Response:
    ctx = portal_context(request)
    chosen: Locale = "en" if lang == "en" else "vi"
    row = getattr(request.state, "portal_session", None)
    if row is not None:
        with ctx.session_factory() as session:
            stored = session.get(db.PortalSessionRow, row.id_hash)
            if stored is not None:
                stored.locale = chosen
                session.commit()
    response = RedirectResponse(safe_path(next), status_code=303)
    set_cookie(request, response, LANG_COOKIE, chosen, max_age=365 * 86400)
    return response


# --------------------------------------------------------------------------------------------
# Rendering and cookies


def set_cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int | None = None
) -> None:
    ctx = portal_context(request)
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=ctx.settings.portal.secure,
    )


def render(
    request: Request,
    template: str,
    values: dict[str, object] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """A page: the template with the common values (`t`, `lang`, `csrf`, `csrf_field`,
    `signed_in`) added by the templates' context processor."""
    ctx = portal_context(request)
    response: HTMLResponse = ctx.templates.TemplateResponse(
        request, template, values or {}, status_code=status_code
    )
    return response


def reader_locale(request: Request) -> Locale:
    return locale_of(request)
