"""An SMTP server in a process of its own, so that it neither shares the worker's event loop
nor its CPU accounting.

`--kind eml` runs Accord's own MailSink (what `accord run` embeds: one .eml file per message,
fsynced, then linked into place); `--kind null` accepts every message and keeps only the time
it was accepted (`time.time()` just before the 250 reply) and its X-Accord-Key header.

Speaks JSON lines: prints `{"port": …}` when listening; `stats` answers the counts; `times`
writes the acceptance times to `<folder>/accepted.jsonl` and answers its path; closing stdin
stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from accord.embedded import MailSink

_PARSER = BytesHeaderParser(policy=default_policy)


class NullHandler:
    def __init__(self) -> None:
        self.accepted: list[tuple[float, str, int]] = []
        self.kinds: Counter[str] = Counter()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        accepted_at = time.time()
        headers = _PARSER.parsebytes(envelope.original_content or b"")
        self.accepted.append(
            (accepted_at, str(headers.get("X-Accord-Key", "")), len(envelope.rcpt_tos))
        )
        self.kinds[str(headers.get("X-Accord-Kind", ""))] += 1
        return "250 2.0.0 Message accepted"


class EmlCounter:
    """Messages stored by MailSink so far, by X-Accord-Kind (each file is read once)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._seen: set[str] = set()
        self.kinds: Counter[str] = Counter()

    def update(self) -> int:
        for path in self._folder.glob("*.eml"):
            if path.name in self._seen:
                continue
            self._seen.add(path.name)
            with path.open("rb") as message:
                head = message.read(8192)
            self.kinds[str(_PARSER.parsebytes(head).get("X-Accord-Kind", ""))] += 1
        return len(self._seen)


def reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def serve(kind: str, folder: Path) -> None:
    loop = asyncio.get_running_loop()

    handler = NullHandler()
    counter = EmlCounter(folder)
    sink: MailSink | None = None
    server: asyncio.Server | None = None
    if kind == "eml":
        sink = MailSink(folder, port=0)
        await sink.start()
        port = sink.port
    else:
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="bench-null", enable_SMTPUTF8=True, loop=loop),
            host="127.0.0.1",
            port=0,
        )
        port = server.sockets[0].getsockname()[1]
    reply({"port": port, "pid": os.getpid()})

    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = line.decode().strip()
        if command == "stats":
            if sink is not None:
                files = await asyncio.to_thread(counter.update)
                reply({"accepted": files, "by_kind": dict(counter.kinds)})
            else:
                reply({"accepted": len(handler.accepted), "by_kind": dict(handler.kinds)})
        elif command == "times":
            path = folder / "accepted.jsonl"
            with path.open("w") as out:
                for at, key, recipients in handler.accepted:
                    out.write(json.dumps({"at": at, "key": key, "rcpt": recipients}) + "\n")
            reply({"path": str(path), "accepted": len(handler.accepted)})
        else:
            reply({"error": f"unknown command {command!r}"})
    if sink is not None:
        await sink.stop()
    if server is not None:
        server.close()
        await server.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=["eml", "null"], required=True)
    parser.add_argument("--folder", type=Path, required=True)
    arguments = parser.parse_args()
    arguments.folder.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(arguments.kind, arguments.folder))


if __name__ == "__main__":
    main()
