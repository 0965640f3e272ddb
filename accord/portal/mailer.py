"""The new-link mail: sent when an officer whose link expired asks for a new one."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accord.portal.context import PortalContext


async def send_new_link(ctx: PortalContext, address: str, *, now: datetime) -> int:
    """Mail a new link to every active officer with this address; how many were sent."""
    return 0
