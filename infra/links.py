"""Personal portal links, portal sessions and the new-link rate limit.

A link mailed to an officer is `<id>.<mac>`: `id` is random (it names a `portal_links` row:
tenant, officer, task, expiry) and `mac` is HMAC-SHA256 of the ID under the link key, so a
token can be checked before the database is read and a made-up or altered one is refused as
"tampered". Nothing personal (name, address, officer ID, task) is in the token. The link key is
derived from the claim signing key with a label of its own (`derive_link_key`): one secret to
keep, two uses that never mix.

A link stops working when it expires, when an admin revokes the officer's links
(`revoke_officer_links`, `accord portal revoke`), or when the officer is no longer active in
his tenant's directory. Opening a link starts a session: the cookie holds a random session ID,
the database only its SHA-256.

Infrastructure: SQLAlchemy and the standard library. Functions run in the caller's session
and never commit (the caller's unit of work does).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from infra.db import LinkRequestRow, OfficerRow, PortalLinkRow, PortalSessionRow

LINK_KEY_LABEL = b"accord/portal-link-key/v1"
"""What the link key is derived for: the same secret with another label signs claims."""

_TOKEN = re.compile(r"^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$")

RefusalReason = Literal["tampered", "unknown", "expired", "revoked", "officer_gone"]


def derive_link_key(claim_secret: bytes) -> bytes:
    """The key that signs portal links (and CSRF tokens), from the claim signing key."""
    return hmac.new(claim_secret, LINK_KEY_LABEL, hashlib.sha256).digest()


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def token_for(link_id: str, *, key: bytes) -> str:
    return f"{link_id}.{_mac(key, 'link:' + link_id)}"


def keyed_hash(key: bytes, label: str, value: str) -> str:
    """A hash of `value` nobody without the key can recompute from a guess (for addresses
    and IPs kept for the rate limit)."""
    return hmac.new(key, f"{label}:{value}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class LinkGrant:
    """A valid link: who it signs in, in which tenant, and the task it opens (if any)."""

    link_id: str
    tenant: str
    officer_id: str
    task_id: str | None
    expires_at: datetime


@dataclass(frozen=True)
class LinkRefusal:
    reason: RefusalReason


def issue_link(
    session: Session,
    *,
    tenant: str,
    officer_id: str,
    key: bytes,
    now: datetime,
    days: int,
    task_id: str | None = None,
    business_key: str | None = None,
) -> str:
    """A link for the officer, valid `days` days from `now`, opening `task_id` (or the task
    list). With a `business_key` (the mail's), the same key gives the same link while it is
    valid, so a retried mail carries the link the first attempt carried."""
    if business_key is not None:
        existing = session.scalars(
            select(PortalLinkRow)
            .where(
                PortalLinkRow.tenant == tenant,
                PortalLinkRow.officer_id == officer_id,
                PortalLinkRow.business_key == business_key,
                PortalLinkRow.revoked_at.is_(None),
            )
            .order_by(PortalLinkRow.created_at.desc())
            .limit(1)
        ).first()
        if existing is not None and existing.expires_at > now:
            return token_for(existing.id, key=key)
    link_id = secrets.token_urlsafe(16)
    session.add(
        PortalLinkRow(
            id=link_id,
            tenant=tenant,
            officer_id=officer_id,
            task_id=task_id,
            business_key=business_key,
            created_at=now,
            expires_at=now + timedelta(days=days),
            revoked_at=None,
        )
    )
    session.flush()
    return token_for(link_id, key=key)


def check_link(
    session: Session, token: str, *, key: bytes, now: datetime
) -> LinkGrant | LinkRefusal:
    """Whether `token` opens a session now, and for whom; otherwise why not."""
    found = _TOKEN.fullmatch(token)
    if found is None:
        return LinkRefusal("tampered")
    link_id, mac = found.groups()
    if not hmac.compare_digest(mac, _mac(key, "link:" + link_id)):
        return LinkRefusal("tampered")
    row = session.get(PortalLinkRow, link_id)
    if row is None:
        return LinkRefusal("unknown")
    if row.revoked_at is not None:
        return LinkRefusal("revoked")
    if row.expires_at <= now:
        return LinkRefusal("expired")
    officer = session.get(OfficerRow, (row.tenant, row.officer_id))
    if officer is None or not officer.active:
        return LinkRefusal("officer_gone")
    return LinkGrant(
        link_id=row.id,
        tenant=row.tenant,
        officer_id=row.officer_id,
        task_id=row.task_id,
        expires_at=row.expires_at,
    )


def revoke_officer_links(session: Session, *, tenant: str, officer_id: str, now: datetime) -> int:
    """Revoke every link of the officer not revoked yet, and end his sessions; the number of
    links revoked."""
    result = session.execute(
        update(PortalLinkRow)
        .where(
            PortalLinkRow.tenant == tenant,
            PortalLinkRow.officer_id == officer_id,
            PortalLinkRow.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    end_officer_sessions(session, tenant=tenant, officer_id=officer_id, now=now)
    return int(getattr(result, "rowcount", 0) or 0)


# --------------------------------------------------------------------------------------------
# Sessions


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def open_session(
    session: Session, grant: LinkGrant, *, now: datetime, hours: int
) -> tuple[str, PortalSessionRow]:
    """A new session for the link's officer: its ID (for the cookie, never stored) and row."""
    session_id = secrets.token_urlsafe(32)
    row = PortalSessionRow(
        id_hash=session_hash(session_id),
        tenant=grant.tenant,
        officer_id=grant.officer_id,
        link_id=grant.link_id,
        locale=None,
        created_at=now,
        expires_at=min(now + timedelta(hours=hours), grant.expires_at),
        ended_at=None,
    )
    session.add(row)
    session.flush()
    return session_id, row


def find_session(session: Session, session_id: str, *, now: datetime) -> PortalSessionRow | None:
    """The live session with this ID: not ended, not expired, its link not revoked."""
    if not session_id or len(session_id) > 100:
        return None
    row = session.get(PortalSessionRow, session_hash(session_id))
    if row is None or row.ended_at is not None or row.expires_at <= now:
        return None
    if row.link_id is not None:
        link = session.get(PortalLinkRow, row.link_id)
        if link is None or link.revoked_at is not None:
            return None
    return row


def end_session(session: Session, session_id: str, *, now: datetime) -> None:
    session.execute(
        update(PortalSessionRow)
        .where(
            PortalSessionRow.id_hash == session_hash(session_id),
            PortalSessionRow.ended_at.is_(None),
        )
        .values(ended_at=now)
    )


def end_officer_sessions(session: Session, *, tenant: str, officer_id: str, now: datetime) -> int:
    result = session.execute(
        update(PortalSessionRow)
        .where(
            PortalSessionRow.tenant == tenant,
            PortalSessionRow.officer_id == officer_id,
            PortalSessionRow.ended_at.is_(None),
        )
        .values(ended_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --------------------------------------------------------------------------------------------
# The new-link request's rate limit


RATE_WINDOW = timedelta(hours=1)


def allow_link_request(session: Session, *, keys: list[str], now: datetime, per_hour: int) -> bool:
    """Count one request under each key (address hash, client hash); False when any of them
    already had `per_hour` requests in the last hour (the request is then not counted)."""
    since = now - RATE_WINDOW
    session.execute(delete(LinkRequestRow).where(LinkRequestRow.at < since - RATE_WINDOW))
    for key in keys:
        count = session.scalar(
            select(func.count())
            .select_from(LinkRequestRow)
            .where(LinkRequestRow.key == key, LinkRequestRow.at > since)
        )
        if (count or 0) >= per_hour:
            return False
    session.add_all(LinkRequestRow(key=key, at=now) for key in keys)
    session.flush()
    return True
