"""Ports for the servers a test starts, chosen where the kernel does not hand out ports itself.

A port found free with `bind(("127.0.0.1", 0))` comes from the ephemeral range
(`/proc/sys/net/ipv4/ip_local_port_range`, 32768–60999 here), from which the kernel also takes
the source port of every outgoing connection: between choosing it and the server binding it,
any client of any test may take it ("bind: address already in use", seen in CI). These ports
are drawn below that range and checked free, all held until all are chosen.
"""

from __future__ import annotations

import random
import socket
from contextlib import ExitStack
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_start() -> int:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int) -> list[int]:
    """Distinct ports free on 127.0.0.1 now, outside the kernel's ephemeral range."""
    low, high = 20000, min(_ephemeral_start(), 32768) - 1
    chosen: list[int] = []
    with ExitStack() as stack:
        for port in random.sample(range(low, high), 200):
            probe = stack.enter_context(socket.socket())
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError(f"no {count} free ports between {low} and {high}")
