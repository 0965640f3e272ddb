"""`accord run`: the whole service in one process — Temporal (the embedded dev server unless
one is configured), the mail sink (unless a relay is), the worker, the agreements folder
deployed, and the demo on request — until Ctrl+C or SIGTERM.

The worker, its client and its database come from `worker.py`, the composition root; this
module only starts the embedded parts around them and says where everything is. It holds no
business rule, and `python worker.py` (production) never runs it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from contextlib import AsyncExitStack

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from accord.demo import start_demo
from accord.deploy import deploy_folder
from accord.embedded import DevServer, MailSink
from accord.identity import Credential
from accord.portal.server import build_context, portal_url, serve_portal
from infra import db
from infra.claim_keys import signing_key, verifying_keys
from infra.settings import Settings, SmtpSettings
from worker import (
    build_worker,
    connect,
    keep_files_private,
    load_mail_templates,
    monitor_server,
    open_database,
    portal_links,
    stop_event,
)


async def serve(
    settings: Settings,
    *,
    demo: bool = False,
    deploy: bool = True,
    sdk_address: str | None = None,
    workers: int = 1,
) -> None:
    """Run the whole service on embedded defaults (or on the parts the settings name).
    `sdk_address`: where the Temporal SDK exports its metrics (`worker.setup_process`);
    `workers` > 1 adds `python worker.py` processes on the same task queue."""
    keep_files_private()
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # First: a broken mail template override stops start-up before anything is started.
    templates = load_mail_templates(settings)
    # Then the claim keys (embedded: generated once into the data folder).
    claim_keys = verifying_keys(settings)
    # So does a database not at this version's schema (OutdatedDatabase, one line naming
    # `accord db upgrade`); the embedded SQLite (no ACCORD_DATABASE_URL) is migrated instead.
    session_factory = open_database(settings, upgrade=settings.database_url is None)
    stop = stop_event()
    async with AsyncExitStack() as stack:
        address = settings.temporal.address
        ui_url = None
        if address is None:
            server = DevServer(
                settings.data_dir,
                port=settings.temporal.dev_port,
                ui_port=settings.temporal.ui_port,
                namespace=settings.temporal.namespace,
                retention_days=settings.temporal.retention_days,
            )
            await stack.enter_async_context(server)
            address, ui_url = server.address, server.ui_url
        smtp = settings.smtp
        if smtp.embedded:
            sink = MailSink(settings.mail_dir, port=smtp.port)
            await stack.enter_async_context(sink)
            smtp = smtp.model_copy(update={"host": "127.0.0.1", "port": sink.port})
        client = await connect(settings, address)
        worker = build_worker(
            client,
            task_queue=settings.temporal.task_queue,
            session_factory=session_factory,
            smtp=smtp,
            templates=templates,
            claim_keys=claim_keys,
            portal_links=portal_links(settings),
        )
        monitor = monitor_server(settings, client, session_factory, smtp, sdk_address)
        if monitor is not None:
            await stack.enter_async_context(monitor)
        extra = [
            await _start_worker_process(settings, address, smtp, number)
            for number in range(1, workers)
        ]
        stack.push_async_callback(_stop_worker_processes, extra)
        async with worker:
            print(f"Temporal: {address} (namespace {settings.temporal.namespace})", flush=True)
            if monitor is not None:
                print(f"Metrics:  {monitor.url}/metrics (health: /healthz, /readyz)", flush=True)
            if extra:
                pids = ", ".join(str(process.pid) for process in extra)
                print(f"Workers:  {workers} (this process and pids {pids})", flush=True)
            if ui_url:
                print(f"Web UI:   {ui_url}", flush=True)
            where = settings.mail_dir.resolve() if smtp.embedded else f"{smtp.host}:{smtp.port}"
            print(f"Mail:     {where}", flush=True)
            print(f"Database: {db.shown_url(settings.resolved_database_url)}", flush=True)
            if deploy:
                for line in await deploy_folder(
                    client,
                    settings.agreements_dir,
                    session_factory=session_factory,
                    task_queue=settings.temporal.task_queue,
                ):
                    print(line, flush=True)
            demo_task: asyncio.Task[None] | None = None
            if demo:
                demo_task = asyncio.create_task(
                    start_demo(
                        client,
                        settings.agreements_dir,
                        session_factory=session_factory,
                        task_queue=settings.temporal.task_queue,
                        credential=Credential(operator="accord-demo", key=signing_key(settings)),
                    )
                )
            portal_task: asyncio.Task[None] | None = None
            if settings.portal.enabled:
                listening = asyncio.Event()
                portal_task = asyncio.create_task(
                    _run_portal(
                        settings, client, session_factory, smtp, stop, listening, sdk_address
                    )
                )
                waiting = asyncio.create_task(listening.wait())
                await asyncio.wait({portal_task, waiting}, return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
                if listening.is_set():
                    print(f"Portal:   {portal_url(settings)}", flush=True)
            print("Accord is running; Ctrl+C (SIGTERM) stops it.", flush=True)
            await stop.wait()
            if portal_task is not None:
                await portal_task
            print("Stopping: waiting for running activities to finish…", flush=True)
            if demo_task is not None:
                demo_task.cancel()


async def _start_worker_process(
    settings: Settings, address: str, smtp: SmtpSettings, number: int
) -> asyncio.subprocess.Process:
    """One more `python worker.py` on the same server, queue, database, relay and claim key.
    Its output goes to this process's; the key travels in its environment, not its arguments.
    With a metrics address host:P, extra worker `number` serves its own on host:P+number (and
    its SDK metrics on a free port)."""
    key = signing_key(settings)
    env = dict(os.environ)
    env.update(
        {
            "ACCORD_TEMPORAL__ADDRESS": address,
            "ACCORD_TEMPORAL__NAMESPACE": settings.temporal.namespace,
            "ACCORD_TEMPORAL__TASK_QUEUE": settings.temporal.task_queue,
            "ACCORD_DATABASE_URL": settings.resolved_database_url,
            "ACCORD_DATA_DIR": str(settings.data_dir.resolve()),
            "ACCORD_SMTP__EMBEDDED": "false",
            "ACCORD_SMTP__HOST": smtp.host,
            "ACCORD_SMTP__PORT": str(smtp.port),
            "ACCORD_CLAIMS__KEY": key.secret.decode("utf-8"),
            "ACCORD_CLAIMS__KEY_ID": key.key_id,
        }
    )
    env.pop("ACCORD_METRICS__SDK_ADDRESS", None)
    if settings.metrics.address:
        host, _, port = settings.metrics.address.rpartition(":")
        env["ACCORD_METRICS__ADDRESS"] = f"{host}:{int(port) + number}"
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "worker", env=env)


async def _stop_worker_processes(processes: list[asyncio.subprocess.Process]) -> None:
    for process in processes:
        if process.returncode is None:
            process.terminate()
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), 40)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _run_portal(
    settings: Settings,
    client: Client,
    session_factory: sessionmaker[Session],
    smtp: SmtpSettings,
    stop: asyncio.Event,
    listening: asyncio.Event,
    sdk_address: str | None,
) -> None:
    """The portal beside the worker; one that cannot listen says so and the rest runs on."""
    ctx = build_context(settings, client, session_factory, smtp=smtp)
    try:
        await serve_portal(ctx, stop, listening, sdk_address)
    except OSError as error:
        print(f"Portal:   not started: {error} (set ACCORD_PORTAL__PORT)", flush=True)
