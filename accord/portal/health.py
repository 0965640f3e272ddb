"""The portal's probes: `/healthz` (liveness), `/readyz` (Temporal and the database reachable;
SMTP reported, not required) and, with `ACCORD_METRICS__PORTAL=true`, `/metrics` (Accord's and
the Temporal SDK's metrics, as the worker's server gives them: `infra.observe`). The reverse
proxy in front of the portal should not pass these paths to the internet."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from accord.portal.context import portal_context
from infra import observe

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> Response:
    return JSONResponse({"status": "alive"})


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> Response:
    ctx = portal_context(request)
    smtp = ctx.smtp or ctx.settings.smtp

    async def temporal() -> None:
        if not await ctx.client.service_client.check_health():
            raise ConnectionError("Temporal reports itself not serving")

    status, body = await observe.readiness(
        [
            observe.Check("temporal", temporal),
            observe.Check("database", observe.database_check(ctx.session_factory)),
            observe.Check("smtp", observe.smtp_check(smtp.host, smtp.port), required=False),
        ]
    )
    return JSONResponse(body, status_code=status)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    ctx = portal_context(request)
    if not ctx.settings.metrics.portal:
        raise HTTPException(404)
    body = await observe.metrics_text([], request.app.state.sdk_metrics_address)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
