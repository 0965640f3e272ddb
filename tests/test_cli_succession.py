"""`accord succession show|apply` (issue 17, point 3) as a user runs it, against real components:
a Temporal dev server, a worker with the real workflows, a SQLite database (the fixtures of
test_cli_engine.py). Nothing is mocked.

A small Quảng Bình plan running today (tasks of Sở Tư pháp and UBND huyện Lệ Thủy reported to
Sở Nội vụ, one of Ban Cán sự Đảng) meets the shipped 2025 reorganisation file: its effective
day, 01/07/2025, is past, so every open and waiting task of a ceasing agency passes now.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from test_cli_engine import (
    CLAIM_KEY,
    OPERATOR,
    VIETNAM,
    Engine,
    EngineThread,
    accord,
    point_cli_at,
)

from accord.reporting import agreement_facts
from activities.models import AgreementFacts
from infra import db

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "agreements" / "directory"
REORGANISATION = SHIPPED / "quang-binh-2025-reorganisation.yaml"
ADMIN = "quan-tri-snv"
TODAY = datetime.now(VIETNAM).date()
AGREEMENT_ID = f"12-kh-snv-{(TODAY - timedelta(days=10)).year}"


def write_plan(folder: Path) -> Path:
    """Two reports due 100 days from now: one of STP and UBND huyện Lệ Thủy to Sở Nội vụ, one
    of Ban Cán sự Đảng (which no change names)."""
    (folder / "directory").mkdir(parents=True)
    for name in ("quang-binh.yaml", REORGANISATION.name):
        shutil.copyfile(SHIPPED / name, folder / "directory" / name)
    start, due, end = (
        TODAY - timedelta(days=10),
        TODAY + timedelta(days=100),
        TODAY + timedelta(days=200),
    )
    path = folder / "ke-hoach-12.yaml"
    path.write_text(
        f"""\
document_number: 12/KH-SNV
kind: implementation_plan
title: Kế hoạch báo cáo chuyên đề
province: Quảng Bình
parties:
  - agency: UBND_TINH
signed_on: {start}
period:
  start: {start}
  end: {end}
directory: directory/quang-binh.yaml
reporting:
  - id: bao-cao-chuyen-de
    title: Báo cáo chuyên đề
    deliverable: report
    owners:
      agencies: [STP, UBND_LE_THUY]
    recipient: SNV
    due:
      kind: fixed
      before: {due}
      label: dot-1
  - id: bao-cao-dang
    title: Báo cáo của Ban Cán sự Đảng
    deliverable: report
    owners:
      agencies: [BCSD_UBND]
    due:
      kind: fixed
      before: {due}
      label: dot-1
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    thread = EngineThread(tmp_path_factory.mktemp("engine"))
    thread.start()
    thread.ready.wait(timeout=120)
    if thread.engine is None:
        thread.stop()
        raise RuntimeError(f"the engine did not start: {thread.error!r}")
    yield thread.engine
    thread.stop()


@pytest.fixture(scope="module")
def plan(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = write_plan(tmp_path_factory.mktemp("plan"))
    with pytest.MonkeyPatch.context() as patch:
        point_cli_at(patch, engine)
        from accord.cli import main

        assert main(["deploy", str(path)]) == 0
    return path


@pytest.fixture
def cli(engine: Engine, plan: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    point_cli_at(monkeypatch, engine)
    monkeypatch.setenv("ACCORD_CLAIMS__KEY", CLAIM_KEY)
    monkeypatch.setenv("ACCORD_CLAIMS__KEY_ID", "cli-test")
    monkeypatch.setenv("ACCORD_CLAIMS__OPERATOR", OPERATOR)
    return engine


def stored(engine: Engine) -> tuple[dict[str, db.AgencyRow], dict[str, db.OfficerRow]]:
    with db.session_factory(db.make_engine(engine.database_url))() as session:
        agencies = {
            row.code: row
            for row in session.scalars(
                select(db.AgencyRow).where(db.AgencyRow.tenant == "quang-binh")
            )
        }
        officers = {
            row.id: row
            for row in session.scalars(
                select(db.OfficerRow).where(db.OfficerRow.tenant == "quang-binh")
            )
        }
    return agencies, officers


def audit_actions(engine: Engine) -> list[str]:
    with db.session_factory(db.make_engine(engine.database_url))() as session:
        return list(
            session.scalars(
                select(db.AUDIT_TABLE.c.action).where(db.AUDIT_TABLE.c.tenant == "quang-binh")
            )
        )


def passed(engine: Engine) -> dict[str, tuple[str, str | None]] | None:
    """Each task's (current owner, original owner) once the STP task has passed; else None."""

    async def read() -> AgreementFacts:
        client = await Client.connect(engine.address, data_converter=pydantic_data_converter)
        return await agreement_facts(client, AGREEMENT_ID)

    facts = asyncio.run(read())
    owners = {task.task_id: (task.agency, task.original_agency) for task in facts.tasks}
    return owners if owners.get(STP_TASK, ("",))[0] == "QT_STP" else None


def eventually(check: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while (found := check()) is None:
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return found


SUCCESSION_IDS = (
    # Written out from the shipped file's one group (both acts take effect on 01/07/2025; see
    # test_succession_file.py): a change of the file changes it.
    "succession-2025-07-01-b4a1c906c5df7eb5b497",
)
STP_TASK = f"{AGREEMENT_ID}/bao-cao-chuyen-de/STP/dot-1"
LE_THUY_TASK = f"{AGREEMENT_ID}/bao-cao-chuyen-de/UBND_LE_THUY/dot-1"
BCSD_TASK = f"{AGREEMENT_ID}/bao-cao-dang/BCSD_UBND/dot-1"


def test_show_prints_what_would_pass_and_changes_nothing(
    cli: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    run = accord(capsys, "succession", "show", str(REORGANISATION))

    assert run.code == 0, run.err
    assert "Cơ quan thêm mới: 21; cán bộ thêm mới: 44" in run.lines
    assert "  - SNV  Sở Nội vụ đến hết 2025-06-30 → QT_SNV" in run.lines
    assert "  - UBND_LE_THUY  UBND huyện Lệ Thủy đến hết 2025-06-30 → UBND_XA_LE_THUY" in run.lines
    assert f"{AGREEMENT_ID} (12/KH-SNV):" in run.lines
    assert f"  {STP_TASK}: STP → QT_STP" in run.lines
    assert f"  {LE_THUY_TASK}: UBND_LE_THUY → UBND_XA_LE_THUY" in run.lines
    assert "  bao-cao-chuyen-de: nơi nhận báo cáo SNV → QT_SNV" in run.lines
    assert not [line for line in run.lines if BCSD_TASK in line]
    agencies, officers = stored(cli)
    assert "QT_SNV" not in agencies and agencies["SNV"].successor is None
    assert "dau-moi-qt-snv" not in officers


def test_bad_input_is_one_line_and_changes_nothing(
    cli: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    text = REORGANISATION.read_text(encoding="utf-8")
    broken.write_text(text.replace("    to: QT_STP\n", "    to: QT_STPP\n"), encoding="utf-8")
    line = next(
        n
        for n, row in enumerate(broken.read_text(encoding="utf-8").splitlines(), 1)
        if row == "    to: QT_STPP"
    )

    run = accord(capsys, "succession", "apply", str(broken), "--yes", "--as", ADMIN)
    assert run.code == 2
    assert run.err.splitlines() == [
        f"accord succession: {broken}:{line}:9: changes[3].to: unknown agency 'QT_STPP' "
        "(did you mean 'QT_STP'?): not in the directory or the file"
    ]

    run = accord(capsys, "succession", "apply", str(REORGANISATION), "--yes", "--as", "dau-moi-snv")
    assert run.code == 2
    assert run.err.splitlines() == [
        "accord succession: officer 'dau-moi-snv' is not an administrator of quang-binh: only "
        "an admin applies a succession"
    ]

    run = accord(capsys, "succession", "show", str(REORGANISATION), "--tenant", "nghe-an")
    assert run.code == 2
    assert run.err.splitlines() == [
        f"accord succession: {REORGANISATION}: the file is for tenant 'quang-binh', not 'nghe-an'"
    ]
    split = tmp_path / "split.yaml"
    split.write_text(
        """\
schema_version: 1
tenant: quang-binh
agencies:
  - {code: UBND_XA_THU, name: UBND xã Thử, kind: commune, active_from: 2025-07-01}
changes:
  - effective: 2025-07-01
    document: "Luật số 72/2025/QH15"
    kind: split
    from: [UBND_QUANG_NINH]
    split:
      - {to: UBND_XA_THU, obligations: [bao-cao-chuyen-de, khong-co]}
""",
        encoding="utf-8",
    )
    run = accord(capsys, "succession", "apply", str(split), "--yes", "--as", ADMIN)
    assert run.code == 2
    assert run.err.splitlines() == [
        f"accord succession: {split}: a split names obligations no running agreement of "
        "quang-binh has: khong-co"
    ]

    # Without --yes and without a terminal to ask on: the preview, then one line.
    run = accord(capsys, "succession", "apply", str(REORGANISATION), "--as", ADMIN)
    assert run.code == 2
    assert f"  {STP_TASK}: STP → QT_STP" in run.lines
    assert run.err.splitlines() == [
        "accord succession: not applied: confirm with --yes (no terminal to ask on)"
    ]
    agencies, _ = stored(cli)
    assert "QT_SNV" not in agencies
    assert "directory_succession_applied" not in audit_actions(cli)


def test_validate_and_schema_know_succession_files(capsys: pytest.CaptureFixture[str]) -> None:
    run = accord(capsys, "validate", str(REORGANISATION))
    assert run.code == 0, run.out
    # 14 provincial bodies pass to 13 (two press bodies merge), 8 districts to 8 communes;
    # two officers each, plus the merged province's leader and administrator.
    assert run.lines == [
        f"OK {REORGANISATION}: succession file of quang-binh — 21 changes, 22 transfers, 21 "
        "new agencies, 44 officers (checked against the directory of Quảng Bình)"
    ]
    run = accord(capsys, "schema", "--succession")
    schema = json.loads(run.out)
    assert schema["title"] == "Accord succession file"
    assert {"tenant", "agencies", "officers", "changes"} <= set(schema["properties"])


def test_apply_updates_the_directory_then_the_agreements_and_again_changes_nothing(
    cli: Engine, capsys: pytest.CaptureFixture[str], plan: Path
) -> None:
    run = accord(capsys, "succession", "apply", str(REORGANISATION), "--yes", "--as", ADMIN)

    assert "Danh bạ: đã cập nhật." in run.lines
    agencies, officers = stored(cli)
    assert agencies["SNV"].active_until == date(2025, 6, 30)
    assert agencies["SNV"].successor == "QT_SNV"
    assert agencies["UBND_LE_THUY"].successor == "UBND_XA_LE_THUY"
    assert agencies["BCSD_UBND"].successor is None and agencies["BCSD_UBND"].active_until is None
    assert agencies["QT_SNV"].name == "Sở Nội vụ tỉnh Quảng Trị"
    assert agencies["QT_SNV"].active_from == date(2025, 7, 1)
    assert officers["dau-moi-qt-snv"].active and officers["dau-moi-qt-snv"].agency_code == "QT_SNV"
    assert officers["dau-moi-snv"].active  # the former officers stay (their history)
    assert audit_actions(cli).count("directory_succession_applied") == 1
    assert run.code == 0, run.err
    # One request for the day's changes (both acts take effect on 01/07/2025).
    assert len([line for line in run.lines if line.startswith(f"{AGREEMENT_ID}: ")]) == 1
    # The agreement passes the tasks at the effective day's midnight, past: at once.
    owners = eventually(lambda: passed(cli))
    assert owners[STP_TASK] == ("QT_STP", "STP")
    assert owners[LE_THUY_TASK] == ("UBND_XA_LE_THUY", "UBND_LE_THUY")
    assert owners[BCSD_TASK] == ("BCSD_UBND", None)

    again = accord(capsys, "succession", "apply", str(REORGANISATION), "--yes", "--as", ADMIN)

    assert "Danh bạ: không thay đổi." in again.lines
    assert audit_actions(cli).count("directory_succession_applied") == 1
    assert again.code == 0, again.err
    assert [line for line in again.lines if line.startswith(f"{AGREEMENT_ID}: ")] == [
        f"{AGREEMENT_ID}: Thay đổi kế thừa {group} đã được áp dụng; không thay đổi gì thêm"
        for group in SUCCESSION_IDS
    ]
    assert "  không có nhiệm vụ nào" in again.lines  # the preview: nothing left to pass

    # Deploying the unchanged directory file again keeps what the succession stored.
    from accord.cli import main

    assert main(["deploy", str(plan)]) == 0
    agencies, officers = stored(cli)
    assert agencies["SNV"].successor == "QT_SNV"
    assert agencies["SNV"].active_until == date(2025, 6, 30)
    assert officers["dau-moi-qt-snv"].active
