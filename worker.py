"""Composition root: the one place that builds settings, the database engine, activities, the
Temporal client and the worker. `accord run` (`accord/service.py`) adds the embedded servers
around it; `python worker.py` runs only the worker against the configured Temporal cluster, for
production deployments.

Nothing else builds settings, engines or clients, and nothing here decides what is due or
what a mail says: this file only composes the layers below it (see tests/test_layers.py), and
imports no entry point (`accord`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.digest import DigestActivities
from activities.mail import MailActivities, PortalLinks
from activities.models import NotificationKind, TaskState
from activities.store import StoreActivities
from activities.templates import MailTemplateError, MailTemplates
from infra import db, observe
from infra.claim_keys import signing_key, verifying_keys
from infra.links import derive_link_key
from infra.logs import configure_logging
from infra.settings import Settings, SmtpSettings, TemporalSettings, settings_problems
from workflows import claims
from workflows.agreement import AgreementWorkflow
from workflows.digest import DigestWorkflow
from workflows.obligation import ObligationWorkflow
from workflows.search_attributes import SA_ESCALATION_LEVEL

log = logging.getLogger("accord")

WORKFLOWS: Sequence[type] = (AgreementWorkflow, ObligationWorkflow, DigestWorkflow)
ACCORD_PACKAGES = ("workflows", "agreements", "activities", "accord")


def build_activities(
    session_factory: sessionmaker[Session],
    smtp: SmtpSettings,
    templates: MailTemplates | None = None,
    portal_links: PortalLinks | None = None,
) -> list[Callable[..., Any]]:
    store = StoreActivities(session_factory)
    mail = MailActivities(session_factory, smtp, templates=templates, links=portal_links)
    digest = DigestActivities(session_factory, smtp, mail, templates=templates)
    return [
        store.record_submission,
        store.record_audit,
        store.record_audits,
        mail.send_notification,
        digest.send_digest,
    ]


MAX_CONCURRENT_ACTIVITIES = 50
"""Activities one worker runs at once; the database pool holds as many connections (each
activity uses at most one at a time), plus a few spare (`infra.db.SPARE_CONNECTIONS`)."""


def build_worker(
    client: Client,
    *,
    task_queue: str,
    session_factory: sessionmaker[Session],
    smtp: SmtpSettings,
    max_concurrent_activities: int = MAX_CONCURRENT_ACTIVITIES,
    max_cached_workflows: int = 1000,
    share_accord_modules: bool = True,
    templates: MailTemplates | None = None,
    claim_keys: Mapping[str, bytes] | None = None,
    portal_links: PortalLinks | None = None,
) -> Worker:
    """The worker; `claim_keys` (key ID → secret) are the keys its update validators accept
    on actor claims (`workflows.claims`; None: those installed already); `portal_links` how
    its mail links each officer to the portal (`portal_links(settings)`; None: mail without
    links, as `accord simulate` sends).

    With `share_accord_modules` (the default) the workflow sandbox shares
    Accord's own packages instead of re-importing them for every workflow run: that halves a
    cached workflow's memory and saves a tenth of the worker's CPU (bench/results), but the
    sandbox then no longer stops a restricted call (`datetime.now()`, I/O) made *in* those
    modules. The tests run the strict sandbox (`share_accord_modules=False`), so such a call in
    workflow code fails there; the replay tests guard the rest."""
    if claim_keys is not None:
        claims.install_verifying_keys(claim_keys)
    restrictions = SandboxRestrictions.default
    if share_accord_modules:
        restrictions = restrictions.with_passthrough_modules(*ACCORD_PACKAGES)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=build_activities(session_factory, smtp, templates, portal_links),
        max_concurrent_activities=max_concurrent_activities,
        max_cached_workflows=max_cached_workflows,
        workflow_runner=SandboxedWorkflowRunner(restrictions=restrictions),
        graceful_shutdown_timeout=timedelta(seconds=20),
    )


class TemporalUnreachable(RuntimeError):
    """The client could not connect: one line naming the address and, where the cause is a
    setting (a TLS file, the CA, the client certificate, the API key), the setting to fix."""

    def __init__(self, message: str, *, reason: str = "", names_setting: bool = True) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.names_setting = names_setting


async def connect(settings: Settings, address: str | None = None) -> Client:
    """Client with the pydantic converter; TLS or API key from settings for a real cluster.
    `TemporalUnreachable` (one line) when it cannot connect."""
    temporal = settings.temporal
    target = address or temporal.address or f"127.0.0.1:{temporal.dev_port}"
    tls: TLSConfig | bool = False
    if temporal.tls or temporal.api_key is not None or _tls_files_set(temporal):
        tls = TLSConfig(
            server_root_ca_cert=_read(temporal.tls_server_ca, "TLS_SERVER_CA"),
            client_cert=_read(temporal.tls_client_cert, "TLS_CLIENT_CERT"),
            client_private_key=_read(temporal.tls_client_key, "TLS_CLIENT_KEY"),
            domain=temporal.tls_server_name,
        )
    try:
        return await Client.connect(
            target,
            namespace=temporal.namespace,
            data_converter=pydantic_data_converter,
            tls=tls,
            api_key=temporal.api_key.get_secret_value() if temporal.api_key else None,
        )
    except (RuntimeError, ValueError) as error:
        reason = connect_failure(error, settings)
        raise TemporalUnreachable(
            f"cannot reach Temporal at {target} (namespace {temporal.namespace}): {reason}",
            reason=reason,
            names_setting="ACCORD_" in reason,
        ) from error


def _tls_files_set(temporal: TemporalSettings) -> bool:
    return any(
        value is not None
        for value in (
            temporal.tls_server_ca,
            temporal.tls_client_cert,
            temporal.tls_client_key,
            temporal.tls_server_name,
        )
    )


def _read(path: Path | None, setting: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise TemporalUnreachable(
            f"cannot read {path} ({error.strerror}): check ACCORD_TEMPORAL__{setting}"
        ) from None


def connect_failure(error: BaseException, settings: Settings) -> str:
    """The cause of a failed connection in one line, naming the setting to fix when the
    cause is one. The core's text is `…: Status { code: …, message: "…", … }` or a TLS
    error in Rust's debug form; only its human part is kept."""
    text = str(error)
    found = re.search(r'message: "([^"]+)"', text)
    reason = (found.group(1) if found else (text.splitlines() or [repr(error)])[0]).lower()
    temporal = settings.temporal
    flat = text.lower().replace(" ", "").replace("_", "")
    if "notvalidforname" in flat:
        return (
            "the server's certificate does not carry the name dialled: set "
            "ACCORD_TEMPORAL__TLS_SERVER_NAME to a name it carries"
        )
    if "unknownissuer" in flat or "invalidcertificate" in flat:
        return (
            "the server's certificate is not signed by a trusted CA: set "
            "ACCORD_TEMPORAL__TLS_SERVER_CA to the CA that signed it"
        )
    if "privatekeyparse" in flat or "privatekey" in flat:
        return (
            "ACCORD_TEMPORAL__TLS_CLIENT_KEY is not the client certificate's private key in "
            "PEM: set it to the key file"
        )
    if "certificateparse" in flat or "invalidcert" in flat:
        return "ACCORD_TEMPORAL__TLS_CLIENT_CERT is not a certificate in PEM: set it to the file"
    if "code:unauthenticated" in flat or "code:permissiondenied" in flat:
        if temporal.api_key is None:
            return f"the server refused the request ({reason}): set ACCORD_TEMPORAL__API_KEY"
        return f"the server refused the API key ({reason}): check ACCORD_TEMPORAL__API_KEY"
    secure = temporal.tls or temporal.api_key is not None or _tls_files_set(temporal)
    if (
        secure
        and temporal.tls_client_cert is None
        and (
            "closenotify" in flat
            or "certificaterequired" in flat
            or "unexpectedeof" in flat
            or "brokenpipe" in flat
            or "connectionreset" in flat
            # What the SDK's client says when the server drops the connection right after
            # the handshake (TLS 1.3 checks the client certificate only then): seen here as
            # often as the others.
            or "operationwascanceled" in flat
        )
    ):
        return (
            "the server closed the TLS connection, as one does that requires a client "
            "certificate: set ACCORD_TEMPORAL__TLS_CLIENT_CERT and ACCORD_TEMPORAL__TLS_CLIENT_KEY"
        )
    if not secure and ("frame" in flat or "http2" in flat or "brokenpipe" in flat):
        return f"{reason} (if the server expects TLS, set ACCORD_TEMPORAL__TLS=true)"
    return reason


def open_database(settings: Settings, *, upgrade: bool = False) -> sessionmaker[Session]:
    """The database's sessions, its pool sized for the worker's concurrent activities, its
    schema at this version's migration (`db.OutdatedDatabase`, one line naming `accord db
    upgrade`, if not; with `upgrade`, the embedded service's own SQLite, migrated instead);
    `db.DatabaseUnavailable` (one line, password hidden) when it cannot be opened."""
    engine = db.open_engine(
        settings.resolved_database_url, upgrade=upgrade, connections=MAX_CONCURRENT_ACTIVITIES
    )
    return db.session_factory(engine)


def keep_files_private() -> None:
    """Files and folders this process creates (the SQLite database, mail, logs, the embedded
    server's database) are readable by their owner only: 0600 and 0700."""
    os.umask(0o077)


def load_mail_templates(settings: Settings) -> MailTemplates:
    """The mail wording: `<ACCORD_DATA_DIR>/mail_templates/` over the package's, every
    template compiled and checked now, so that a broken override stops start-up naming its file
    and line (MailTemplateError, one line), before any server is started."""
    templates = MailTemplates(settings.data_dir / "mail_templates")
    templates.load_all()
    return templates


def portal_links(settings: Settings) -> PortalLinks:
    """Each officer's signed portal link in mail: `ACCORD_PORTAL__BASE_URL` (the address
    officers reach the portal at, behind the province's proxy in production), the link key
    derived from the claim signing key, `ACCORD_PORTAL__LINK_DAYS`."""
    portal = settings.portal
    return PortalLinks(
        base_url=portal.base_url,
        key=derive_link_key(signing_key(settings).secret),
        days=portal.link_days,
    )


def stop_event() -> asyncio.Event:
    """Set on SIGTERM or Ctrl+C (SIGINT)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def setup_process(settings: Settings) -> str | None:
    """Once per process, before any Temporal client: logging as the settings say (JSON lines
    or text on stderr, secrets hidden) and the one Temporal runtime, whose core (Rust) log
    lines go through that logging and which, with `ACCORD_METRICS__ADDRESS`, exports the SDK's
    metrics. Returns the SDK exporter's address (None: no metrics)."""
    configure_logging(settings.log_format, level=settings.log_level, secrets=settings.secrets)
    sdk_address = None
    if settings.metrics.address is not None:
        sdk_address = settings.metrics.sdk_address or f"127.0.0.1:{_free_loopback_port()}"
    Runtime.set_default(build_runtime(sdk_address), error_if_already_set=False)
    return sdk_address


def build_runtime(sdk_address: str | None) -> Runtime:
    """A Temporal runtime forwarding core logs to Python logging (`temporalio.core`), with a
    Prometheus exporter on `sdk_address` when given."""
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
            ),
            metrics=PrometheusConfig(bind_address=sdk_address) if sdk_address else None,
        )
    )


def _free_loopback_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def count_tasks(client: Client) -> None:
    """The task gauges from Temporal's visibility: one count query per state, and the open
    overdue tasks listed for their escalation level (few, and only their search attributes).
    A task's runs closed by continue-as-new are not counted: only its running or completed
    one."""
    for state in TaskState:
        found = await client.count_workflows(
            f"AccordKind = 'task' AND AccordState = '{state.value}' "
            "AND ExecutionStatus IN ('Running', 'Completed')"
        )
        observe.TASKS.labels(state=state.value).set(found.count)
    levels: dict[int, int] = {}
    query = "AccordKind = 'task' AND AccordState = 'overdue' AND ExecutionStatus = 'Running'"
    async for execution in client.list_workflows(query):
        level = execution.typed_search_attributes.get(SA_ESCALATION_LEVEL) or 0
        levels[level] = levels.get(level, 0) + 1
    observe.TASKS_OVERDUE.clear()
    observe.TASKS_OVERDUE.labels(escalation_level="0").set(0)  # the series always exists
    for level, count in sorted(levels.items()):
        observe.TASKS_OVERDUE.labels(escalation_level=str(level)).set(count)


def health_checks(
    client: Client, session_factory: sessionmaker[Session], smtp: SmtpSettings
) -> list[observe.Check]:
    """Readiness: Temporal and the database required; SMTP reported only."""

    async def temporal() -> None:
        if not await client.service_client.check_health():
            raise ConnectionError("Temporal reports itself not serving")

    return [
        observe.Check("temporal", temporal),
        observe.Check("database", observe.database_check(session_factory)),
        observe.Check("smtp", observe.smtp_check(smtp.host, smtp.port), required=False),
    ]


def monitor_server(
    settings: Settings,
    client: Client,
    session_factory: sessionmaker[Session],
    smtp: SmtpSettings,
    sdk_address: str | None,
) -> observe.MonitorServer | None:
    """The worker's /metrics, /healthz and /readyz server, or None when not configured."""
    address = settings.metrics.address
    if address is None:
        return None
    observe.init_labels([kind.value for kind in NotificationKind], [s.value for s in TaskState])

    async def outbox_age() -> None:
        age = await asyncio.to_thread(observe.oldest_pending_outbox_age, session_factory)
        observe.OUTBOX_OLDEST_PENDING.set(age)

    async def tasks() -> None:
        await count_tasks(client)

    return observe.MonitorServer(
        address,
        checks=health_checks(client, session_factory, smtp),
        refreshers=[
            outbox_age,
            observe.CachedRefresher(tasks, settings.metrics.tasks_refresh_seconds),
        ],
        sdk_address=sdk_address,
    )


async def run_worker_only(settings: Settings, sdk_address: str | None = None) -> None:
    """Production: a worker process against the configured cluster, database and SMTP relay."""
    templates = load_mail_templates(settings)
    session_factory = open_database(settings)
    client = await connect(settings)
    stop = stop_event()
    monitor = monitor_server(settings, client, session_factory, settings.smtp, sdk_address)
    worker = build_worker(
        client,
        task_queue=settings.temporal.task_queue,
        session_factory=session_factory,
        smtp=settings.smtp,
        templates=templates,
        claim_keys=verifying_keys(settings),
        portal_links=portal_links(settings),
    )
    async with AsyncExitStack() as stack:
        if monitor is not None:
            await stack.enter_async_context(monitor)
            log.info("metrics and health at %s (/metrics, /healthz, /readyz)", monitor.url)
        async with worker:
            log.info("worker polling %s", settings.temporal.task_queue)
            await stop.wait()


def main() -> int:
    keep_files_private()
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"worker: invalid ACCORD_* settings: {settings_problems(error)}", file=sys.stderr)
        return 2
    except ValueError as error:  # ACCORD_ENV_FILE names no file
        print(f"worker: invalid ACCORD_* settings: {error}", file=sys.stderr)
        return 2
    sdk_address = setup_process(settings)
    try:
        asyncio.run(run_worker_only(settings, sdk_address))
    except MailTemplateError as error:
        # The file and line are the whole story; a traceback would bury them.
        print(f"worker: mail template: {error}", file=sys.stderr)
        return 2
    except observe.MonitorError as error:
        # A taken metrics port is configuration: exit 2 so systemd does not restart forever.
        print(f"worker: {error}", file=sys.stderr)
        return 2
    except (
        db.DatabaseUnavailable,
        db.OutdatedDatabase,
        TemporalUnreachable,
    ) as error:
        print(f"worker: {error}", file=sys.stderr)
        return 1
    return 0


def _exit(code: int) -> NoReturn:
    """Flush and leave at once: a process that used a Temporal client can abort in interpreter
    teardown when the SDK's Rust threads call into a finalizing Python (sdk-python#300, exit
    134), which turned a worker's one-line refusal into a crash (as `accord`'s console_main)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
