"""`accord portal`: the officer portal on its own (production: behind the reverse proxy), and
`accord portal revoke OFFICER --tenant T`: an admin revokes an officer's links and sessions."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from accord.cli.engine import (
    EXIT_BAD_INPUT,
    CommandError,
    connect,
    load_settings,
    open_database,
)


def add_portal_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="portal_action", metavar="ACTION")
    revoke = actions.add_parser(
        "revoke",
        help="revoke every link and end every session of an officer (recorded in the audit)",
        description="Revoke every portal link of an officer and end his sessions; his next "
        "mail carries a new link. Recorded in the audit trail.",
    )
    revoke.add_argument("officer", metavar="OFFICER_ID", help="the officer's ID in the directory")
    revoke.add_argument("--tenant", required=True, help="the directory's tenant (province)")
    revoke.add_argument(
        "--by", dest="operator", help="who revokes (default: ACCORD_CLAIMS__OPERATOR)"
    )


def portal(args: argparse.Namespace) -> int:
    if getattr(args, "portal_action", None) == "revoke":
        return revoke(args)
    return serve(args)


def serve(args: argparse.Namespace) -> int:
    """Serve the portal on ACCORD_PORTAL__HOST:ACCORD_PORTAL__PORT until Ctrl+C (SIGTERM)."""
    from accord.portal.server import build_context, portal_url, serve_portal
    from infra.claim_keys import ClaimKeyError
    from worker import setup_process, stop_event

    settings = load_settings()
    sdk_address = setup_process(settings)
    session_factory = open_database(settings)

    async def run() -> None:
        client = await connect(settings)
        try:
            ctx = build_context(settings, client, session_factory)
        except ClaimKeyError as error:
            raise CommandError(str(error), EXIT_BAD_INPUT) from error
        stop = stop_event()
        print(f"Portal: {portal_url(settings)} (links: {settings.portal.base_url})", flush=True)
        try:
            await serve_portal(ctx, stop, sdk_metrics_address=sdk_address)
        except OSError as error:
            raise CommandError(f"{error} (set ACCORD_PORTAL__PORT)") from error

    asyncio.run(run())
    return 0


def revoke(args: argparse.Namespace) -> int:
    """Revoke the officer's links and end his sessions; one audit entry."""
    import uuid

    from infra import db, links

    settings = load_settings()
    operator = args.operator or settings.claims.operator
    if not operator:
        raise CommandError(
            "say who revokes: --by OPERATOR or ACCORD_CLAIMS__OPERATOR", EXIT_BAD_INPUT
        )
    now = datetime.now(UTC)
    with open_database(settings)() as session:
        officer = db.get_officer(session, tenant=args.tenant, officer_id=args.officer)
        if officer is None:
            raise CommandError(
                f"unknown officer {args.officer!r} in the directory of {args.tenant}",
                EXIT_BAD_INPUT,
            )
        count = links.revoke_officer_links(
            session, tenant=args.tenant, officer_id=args.officer, now=now
        )
        db.add_audit_rows(
            session,
            rows=[
                {
                    "event_key": f"portal-revoke/{uuid.uuid4().hex}",
                    "at": now,
                    "agreement_id": "",
                    "tenant": args.tenant,
                    "task_id": None,
                    "actor": args.officer,
                    "channel": "cli",
                    "operator": operator,
                    "action": "portal_links_revoked",
                    "detail": {"links": str(count)},
                }
            ],
        )
        session.commit()
    print(f"{args.tenant}/{args.officer}: {count} link(s) revoked, sessions ended")
    return 0
