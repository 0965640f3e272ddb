"""`accord search-attributes check|register` against a bare dev server, as a cluster's
namespace is before its first deploy: no custom search attribute at all. Every command runs as
a subprocess with ACCORD_* settings, as an operator runs it.

Namespace `default` starts bare; namespace `other` holds `AccordState` with the wrong type, a
conflict no command can mend.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ports import free_ports

from accord.embedded import SEARCH_ATTRIBUTES, find_binary

ROOT = Path(__file__).resolve().parents[1]
ACCORD = str(Path(sys.executable).parent / "accord")
AGREEMENT = ROOT / "agreements" / "nghe-an-2021-2026-chuong-trinh.yaml"


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("bare-temporal")
    port, ui_port = free_ports(2)
    address = f"127.0.0.1:{port}"
    temporal = find_binary("temporal")
    server = subprocess.Popen(
        [
            temporal, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
            "--port", str(port), "--ui-port", str(ui_port),
            "--db-filename", str(folder / "temporal.db"), "--namespace", "other",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"the dev server on {address} did not start") from None
                time.sleep(0.1)
        created = subprocess.run(
            [
                temporal, "operator", "search-attribute", "create", "--address", address,
                "--namespace", "other", "--name", "AccordState", "--type", "Int",
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        yield address
    finally:
        server.terminate()
        server.wait(timeout=30)


def run(
    address: str, folder: Path, *argv: str, namespace: str = "default"
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    env.update(
        {
            "ACCORD_ENV_FILE": os.devnull,
            "ACCORD_TEMPORAL__ADDRESS": address,
            "ACCORD_TEMPORAL__NAMESPACE": namespace,
            "ACCORD_DATA_DIR": str(folder),
            "ACCORD_SMTP__EMBEDDED": "false",
        }
    )
    return subprocess.run(
        [ACCORD, *argv], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_a_bare_namespace_is_one_line_until_the_attributes_are_registered(
    bare_server: str, tmp_path: Path
) -> None:
    assert run(bare_server, tmp_path, "db", "upgrade").returncode == 0

    check = run(bare_server, tmp_path, "search-attributes", "check")
    assert check.returncode == 1, check.stderr
    assert check.stdout.strip() == (
        f"namespace default: thiếu {', '.join(SEARCH_ATTRIBUTES)}; hãy chạy "
        "`accord search-attributes register`"
    )

    # What a first deploy on a cluster did: a traceback. Now one line naming the command.
    for argv in (("deploy", str(AGREEMENT)), ("status",)):
        failed = run(bare_server, tmp_path, *argv)
        assert failed.returncode == 1, failed.stdout
        lines = failed.stderr.strip().splitlines()
        assert len(lines) == 1, failed.stderr
        assert lines[0].startswith(f"accord {argv[0]}: Temporal: ")
        assert "search attribute" in lines[0]
        assert lines[0].endswith("`accord search-attributes register`.")

    registered = run(bare_server, tmp_path, "search-attributes", "register")
    assert registered.returncode == 0, registered.stderr
    assert (
        registered.stdout.strip() == f"namespace default: đã đăng ký {', '.join(SEARCH_ATTRIBUTES)}"
    )
    again = run(bare_server, tmp_path, "search-attributes", "register")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == (
        f"namespace default: đã có đủ {len(SEARCH_ATTRIBUTES)} thuộc tính tìm kiếm"
    )
    assert run(bare_server, tmp_path, "search-attributes", "check").returncode == 0

    deployed = run(bare_server, tmp_path, "deploy", str(AGREEMENT))
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stdout.startswith(
        "deployed agreement:nghe-an-ctph-dan-van-2021-2026: 11 tasks (started)"
    )


def test_an_attribute_of_another_type_is_a_conflict_naming_both_types(
    bare_server: str, tmp_path: Path
) -> None:
    for action in ("check", "register"):
        result = run(bare_server, tmp_path, "search-attributes", action, namespace="other")
        assert result.returncode == 1, result.stdout
        assert result.stderr.strip() == (
            "accord search-attributes: namespace other: AccordState is Int, Accord needs "
            "Keyword. A search attribute's type cannot be changed: use another namespace "
            "(ACCORD_TEMPORAL__NAMESPACE)."
        )
    # `register` added nothing while a conflict stood.
    listing = subprocess.run(
        [
            find_binary("temporal"), "operator", "search-attribute", "list", "--address",
            bare_server, "--namespace", "other", "-o", "json",
        ],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    custom = json.loads(listing.stdout)["customAttributes"]
    assert custom == {"AccordState": "INDEXED_VALUE_TYPE_INT"}
