"""`accord.simulation` when the time-skipping test server's clock stops skipping: the simulation
ends with one line instead of hanging (the CLI's runs are in test_cli_engine.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from temporalio.api.testservice.v1 import LockTimeSkippingRequest

from accord.simulation import SimulationStalled, simulate, start_test_server
from agreements.loader import load_agreement

QUANG_BINH_289 = Path(__file__).resolve().parents[1] / "agreements/quang-binh-2025-289-kh-ubnd.yaml"


async def test_a_clock_that_stops_skipping_ends_the_simulation_with_one_line(
    tmp_path: Path,
) -> None:
    env = await start_test_server()
    try:
        # A lock nobody releases, as the test server leaks one in some cases.
        await env.client.test_service.lock_time_skipping(LockTimeSkippingRequest())
        started = time.monotonic()
        with pytest.raises(SimulationStalled) as stalled:
            await simulate(load_agreement(QUANG_BINH_289), workdir=tmp_path, env=env, stall_after=3)
        elapsed = time.monotonic() - started
    finally:
        await env.shutdown()

    message = str(stalled.value)
    assert "\n" not in message
    assert message.startswith("the simulation stalled at ")
    assert "running to the agreement's end" in message
    assert "only in real time for 3 s" in message
    assert elapsed < 30
