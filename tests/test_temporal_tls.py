"""Accord against a Temporal "cluster" reached over TLS: the dev server behind a TLS-terminating
proxy (tests/tls_proxy.py) with a CA made here, requiring a client certificate (mTLS) and, on a
second port, also an API key (`authorization: Bearer …`, checked by the proxy since the dev
server ignores it).

Everything runs as a user would run it: `python worker.py` and `accord` as subprocesses with
ACCORD_* settings in their environment. A wrong setting is one line naming the setting to fix.

What is not tested here: a real cluster's own TLS and authorizer (the proxy stands in for
them), and TLS 1.2 (Python's server context negotiates TLS 1.3 with the SDK's rustls).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ports import free_ports
from tls_proxy import SERVER_NAME, Pki, TlsProxy, make_pki

from accord.embedded import DevServer
from infra import migrations
from infra.db import make_engine

ROOT = Path(__file__).resolve().parents[1]
ACCORD = str(Path(sys.executable).parent / "accord")
API_KEY = "accord-test-api-key-7f3c9a"
CLAIM_KEY = "tls-test-claim-key-0123456789abcdefghij"
AGREEMENTS = {
    # One agreement per case: a deployed agreement keeps the task queue it was started on.
    "mtls": ("nghe-an-2021-2026-chuong-trinh.yaml", "nghe-an-ctph-dan-van-2021-2026"),
    "mtls+api-key": (
        "quang-binh-2023-ke-hoach-phoi-hop.yaml",
        "quang-binh-kh-phoi-hop-dan-van-2023",
    ),
}


@dataclass
class Cluster:
    pki: Pki
    mtls: TlsProxy
    with_key: TlsProxy
    folder: Path


class ClusterThread(threading.Thread):
    """The dev server and both proxies on their own event loop, while the test's thread runs
    subprocesses."""

    def __init__(self, folder: Path) -> None:
        super().__init__(name="tls-cluster", daemon=True)
        self.folder = folder
        self.ready = threading.Event()
        self.cluster: Cluster | None = None
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:
            self.error = error
        finally:
            self.ready.set()

    async def _serve(self) -> None:
        pki = make_pki(self.folder / "pki")
        port, ui_port, mtls_port, key_port = free_ports(4)
        server = DevServer(self.folder / "temporal", port=port, ui_port=ui_port)
        async with server:
            mtls = TlsProxy(pki, mtls_port, server.address)
            with_key = TlsProxy(pki, key_port, server.address, api_key=API_KEY)
            async with mtls, with_key:
                self._loop = asyncio.get_running_loop()
                self._stopping = asyncio.Event()
                self.cluster = Cluster(pki, mtls, with_key, self.folder)
                self.ready.set()
                await self._stopping.wait()

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self.join(timeout=60)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    thread = ClusterThread(tmp_path_factory.mktemp("tls"))
    thread.start()
    thread.ready.wait(timeout=120)
    if thread.cluster is None:
        thread.stop()
        raise RuntimeError(f"the TLS cluster did not start: {thread.error!r}")
    # The deploy step: the database migrated once (a worker never creates its schema).
    migrations.upgrade(make_engine(f"sqlite:///{thread.cluster.folder / 'accord.db'}"))
    yield thread.cluster
    thread.stop()


def environment(cluster: Cluster, proxy: TlsProxy, **settings: str) -> dict[str, str]:
    """A production environment: the cluster through `proxy`, with mTLS; `settings` (without
    the ACCORD_TEMPORAL__ prefix) override or, set to "", remove a setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    temporal = {
        "ADDRESS": proxy.address,
        "TLS": "true",
        "TLS_SERVER_CA": str(cluster.pki.ca),
        "TLS_CLIENT_CERT": str(cluster.pki.client_cert),
        "TLS_CLIENT_KEY": str(cluster.pki.client_key),
        "TASK_QUEUE": f"tls-{uuid.uuid4()}",
    }
    temporal.update(settings)
    env.update({f"ACCORD_TEMPORAL__{k}": v for k, v in temporal.items() if v})
    env.update(
        {
            "ACCORD_ENV_FILE": os.devnull,
            "ACCORD_DATA_DIR": str(cluster.folder / "data"),
            "ACCORD_DATABASE_URL": f"sqlite:///{cluster.folder / 'accord.db'}",
            "ACCORD_SMTP__EMBEDDED": "false",
            "ACCORD_CLAIMS__KEY": CLAIM_KEY,
            "ACCORD_CLAIMS__OPERATOR": "tls-test",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )


@pytest.mark.parametrize("with_api_key", [False, True], ids=["mtls", "mtls+api-key"])
def test_worker_and_commands_run_a_workflow_through_the_tls_proxy(
    cluster: Cluster, with_api_key: bool
) -> None:
    proxy = cluster.with_key if with_api_key else cluster.mtls
    file, agreement_id = AGREEMENTS["mtls+api-key" if with_api_key else "mtls"]
    env = environment(cluster, proxy, API_KEY=API_KEY if with_api_key else "")
    authorized_before, refused_before = proxy.authorized, proxy.refused
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    try:
        assert worker.stdout is not None
        seen = []
        for line in worker.stdout:
            seen.append(line)
            if "worker polling" in line:
                break
        else:
            pytest.fail(f"the worker exited with {worker.wait()}: {''.join(seen)}")

        deployed = run([ACCORD, "deploy", str(ROOT / "agreements" / file)], env)
        assert deployed.returncode == 0, deployed.stderr
        # The overview is a query: the worker, through the proxy, answers it.
        status = run([ACCORD, "status", "--agreement", agreement_id], env)
        assert status.returncode == 0, status.stderr
        assert f"(agreement:{agreement_id}" in status.stdout.splitlines()[0]
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    if with_api_key:
        assert proxy.authorized > authorized_before
        assert proxy.refused == refused_before


ONE_LINE_CASES = {
    "wrong CA": (
        {"TLS_SERVER_CA": "other_ca"},
        "the server's certificate is not signed by a trusted CA: set "
        "ACCORD_TEMPORAL__TLS_SERVER_CA to the CA that signed it",
    ),
    "no client certificate": (
        {"TLS_CLIENT_CERT": "", "TLS_CLIENT_KEY": ""},
        "the server closed the TLS connection, as one does that requires a client certificate: "
        "set ACCORD_TEMPORAL__TLS_CLIENT_CERT and ACCORD_TEMPORAL__TLS_CLIENT_KEY",
    ),
    "the certificate as its own key": (
        {"TLS_CLIENT_KEY": "client_cert"},
        "ACCORD_TEMPORAL__TLS_CLIENT_KEY is not the client certificate's private key in PEM: "
        "set it to the key file",
    ),
    "a missing key file": (
        {"TLS_CLIENT_KEY": "missing"},
        "check ACCORD_TEMPORAL__TLS_CLIENT_KEY",
    ),
    "a name the certificate lacks": (
        {"ADDRESS": "localhost"},
        "the server's certificate does not carry the name dialled: set "
        "ACCORD_TEMPORAL__TLS_SERVER_NAME to a name it carries",
    ),
}


def _resolve(cluster: Cluster, proxy: TlsProxy, change: dict[str, str]) -> dict[str, str]:
    files = {
        "other_ca": str(cluster.pki.other_ca),
        "client_cert": str(cluster.pki.client_cert),
        "missing": str(cluster.folder / "no-such-key.pem"),
        "localhost": f"localhost:{proxy.port}",
    }
    return {name: files.get(value, value) for name, value in change.items()}


@pytest.mark.parametrize("case", list(ONE_LINE_CASES))
def test_a_wrong_tls_setting_is_one_line_naming_it(cluster: Cluster, case: str) -> None:
    change, expected = ONE_LINE_CASES[case]
    env = environment(cluster, cluster.mtls, **_resolve(cluster, cluster.mtls, change))

    for argv, prefix in (
        ([sys.executable, str(ROOT / "worker.py")], "worker: "),
        ([ACCORD, "status"], "accord status: "),
    ):
        done = run(argv, env)
        assert done.returncode in (1, 2), done
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith(prefix), lines
        assert expected in lines[0], lines


def test_the_server_name_setting_makes_another_address_verify(cluster: Cluster) -> None:
    env = environment(
        cluster,
        cluster.mtls,
        ADDRESS=f"localhost:{cluster.mtls.port}",
        TLS_SERVER_NAME=SERVER_NAME,
    )
    done = run([ACCORD, "status"], env)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("key", ["", "not-the-key"], ids=["no API key", "a wrong API key"])
def test_an_api_key_refused_is_one_line_naming_it(cluster: Cluster, key: str) -> None:
    env = environment(cluster, cluster.with_key, API_KEY=key)
    refused_before = cluster.with_key.refused

    done = run([ACCORD, "status"], env)

    assert done.returncode in (1, 2)
    assert done.stderr.count("\n") == 1, done.stderr
    setting = "set ACCORD_TEMPORAL__API_KEY" if not key else "check ACCORD_TEMPORAL__API_KEY"
    assert done.stderr.startswith("accord status: cannot reach Temporal at"), done.stderr
    assert f"(request unauthorized): {setting}" in done.stderr
    assert cluster.with_key.refused > refused_before


def test_a_certificate_without_its_key_is_refused_at_start(cluster: Cluster) -> None:
    env = environment(cluster, cluster.mtls, TLS_CLIENT_KEY="")
    done = run([sys.executable, str(ROOT / "worker.py")], env)
    assert done.returncode == 2
    assert done.stderr == (
        "worker: invalid ACCORD_* settings: temporal: Value error, "
        "ACCORD_TEMPORAL__TLS_CLIENT_CERT is set without ACCORD_TEMPORAL__TLS_CLIENT_KEY: set "
        "the client certificate's key too\n"
    )


def test_an_empty_tls_path_setting_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.settings import TemporalSettings

    for name in ("TLS_CLIENT_CERT", "TLS_CLIENT_KEY", "TLS_SERVER_CA"):
        monkeypatch.setenv(f"ACCORD_TEMPORAL__{name}", "")
    t = TemporalSettings(tls_client_cert="", tls_client_key="", tls_server_ca="")
    assert (t.tls_client_cert, t.tls_client_key, t.tls_server_ca) == (None, None, None)
