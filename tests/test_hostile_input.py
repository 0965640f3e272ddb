"""Hostile input at the command line (issue 14, point 6): attachment references outside the
allow-list, too long or too many are refused with file, line and field before anything is sent;
`accord validate` on a file made to produce hundreds of thousands of problems prints a screenful
and a count, quickly and in little memory."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from accord.cli import main
from activities.templates import one_line
from workflows.payloads import SubmitReport, clip_summary, parse_argument, ui_text

ROOT = Path(__file__).resolve().parents[1]
BROKEN = ROOT / "tests" / "agreements" / "broken"
ACTOR = {
    "officer_id": "snv-dau-moi",
    "tenant": "quang-binh",
    "agency": "SNV",
    "roles": ["focal_point"],
}
DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.fixture(autouse=True)
def operator(monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator with a credential: what refuses a report below is the report itself."""
    monkeypatch.setenv("ACCORD_CLAIMS__OPERATOR", "van-hanh")
    monkeypatch.setenv("ACCORD_CLAIMS__KEY", "k" * 40)


def submit(capsys: pytest.CaptureFixture[str], report: Path) -> tuple[int, list[str]]:
    capsys.readouterr()
    # The task ID and officer do not exist: the report file is refused before either is
    # looked up, so no database, server or task is touched.
    code = main(["submit", "x/y/SNV/2024", "--file", str(report), "--as", "snv-dau-moi"])
    return code, capsys.readouterr().err.splitlines()


def test_submit_refuses_attachments_outside_the_allow_list(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = tmp_path / "bao-cao.yaml"
    report.write_text(
        "summary: Báo cáo\n"
        "attachments:\n"
        "  - javascript:alert(document.cookie)\n"  # line 3
        "  - file:///etc/passwd\n"
        "  - http://vanban.example/bc.pdf\n"
        "  - ../../etc/passwd\n"
        f"  - https://{'a' * 500}.example/\n"
        "  - https://nguoi-dung:mat-khau@vanban.example/bc.pdf\n"
        "  - sha256:1234\n"  # line 9
        "  - https://vanban.quangbinh.example/2025/bc-6t.pdf\n"
        f"  - {DIGEST}\n"
        "  - Báo cáo 6 tháng.pdf\n",
        encoding="utf-8",
    )

    code, lines = submit(capsys, report)

    assert code == 2
    schemes = "use an https:// link, sha256:<64 hex digits> or a file name"
    assert lines == [
        f"accord submit: {report}:3:5: attachments[0]: attachment scheme 'javascript' is not "
        f"allowed; {schemes}",
        f"{report}:4:5: attachments[1]: attachment scheme 'file' is not allowed; {schemes}",
        f"{report}:5:5: attachments[2]: attachment scheme 'http' is not allowed; {schemes}",
        f"{report}:6:5: attachments[3]: an attachment is an https:// link, sha256:<64 hex "
        "digits> or a file name without folders, a leading dot or surrounding spaces "
        "(e.g. bao-cao-6-thang.pdf)",
        f"{report}:7:5: attachments[4]: String should have at most 500 characters",
        f"{report}:8:5: attachments[5]: an https:// attachment link needs a host, and no spaces "
        "or user name",
        f"{report}:9:5: attachments[6]: a sha256: reference is 'sha256:' and 64 lower-case "
        "hex digits",
    ]


def test_a_report_file_hiding_a_bidi_override_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = tmp_path / "bao-cao.yaml"
    # "bc\u202efdp.exe" shows as "bcexe.pdf".
    report.write_text("summary: Báo cáo\nattachments:\n  - bc\u202efdp.exe\n", encoding="utf-8")

    code, lines = submit(capsys, report)

    assert code == 2
    assert lines == [
        f"accord submit: {report}:3:5: attachments[0]: invisible format character U+202E "
        "(RIGHT-TO-LEFT OVERRIDE) is not allowed; delete it"
    ]


def test_submit_refuses_more_than_twenty_attachments(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = tmp_path / "bao-cao.yaml"
    names = "".join(f"  - phu-luc-{n}.pdf\n" for n in range(1, 22))
    report.write_text(f"summary: Báo cáo\nattachments:\n{names}", encoding="utf-8")

    code, lines = submit(capsys, report)

    assert code == 2
    assert lines == [f"accord submit: {report}:3:3: attachments: at most 20 attachments, not 21"]


@pytest.mark.parametrize(
    ("attachments", "expected"),
    [
        (["javascript:alert(1)"], "attachments.0: Value error, attachment scheme 'javascript'"),
        (["x" * 501], "attachments.0: String should have at most 500 characters"),
        (["bc\u202efdp.exe"], "attachments.0: Value error, an attachment reference must not"),
        ([f"phu-luc-{n}.pdf" for n in range(21)], "attachments: List should have at most 20"),
    ],
)
def test_the_update_validator_refuses_bad_attachments_in_one_line(
    attachments: list[str], expected: str
) -> None:
    # What the Obligation workflow's submit_report validator runs on a plain client's JSON.
    payload = {"actor": ACTOR, "summary": "Báo cáo", "attachments": attachments}
    with pytest.raises(ValueError) as caught:
        parse_argument(SubmitReport, "submit_report", payload, ())
    message = str(caught.value)
    assert message.startswith(f"submit_report: invalid SubmitReport: {expected}")
    assert "\n" not in message and "alert(1)" not in message


def test_allowed_attachment_references_pass() -> None:
    allowed = ["https://vanban.quangbinh.example/2025/bc-6t.pdf", DIGEST, "Báo cáo 6 tháng.pdf"]
    report = SubmitReport.model_validate({"actor": ACTOR, "summary": "x", "attachments": allowed})
    assert report.attachments == allowed
    with pytest.raises(ValidationError):
        SubmitReport.model_validate({"actor": ACTOR, "summary": "x", "attachments": ["data:,x"]})


# --------------------------------------------------------------------------------------------
# accord validate: a bounded answer to any file


def run_validate(path: Path) -> tuple[subprocess.CompletedProcess[str], float, int]:
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "accord.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return done, time.monotonic() - began, peak_kb


def test_validate_refuses_an_alias_bomb_in_one_line(tmp_path: Path) -> None:
    # The shape that printed 195,398 lines: a list of invalid obligations multiplied by
    # aliases, three levels of 57 (57**3 = 185,193 entries, each "not a mapping"), under the
    # 200,000-value limit, so each entry used to print its own problem.
    entry = "x"
    level1 = "[" + ", ".join([entry] * 57) + "]"
    text = (
        BROKEN.joinpath("directory-missing.yaml")
        .read_text(encoding="utf-8")
        .split("reporting:")[0]
        .replace("danh-ba.yaml", "directory.yaml")
        + f"x-a: &a {level1}\n"
        + "x-b: &b ["
        + ", ".join(["*a"] * 57)
        + "]\n"
        + "reporting: ["
        + ", ".join(["*b"] * 57)
        + "]\n"
    )
    path = tmp_path / "bomb.yaml"
    path.write_text(text, encoding="utf-8")
    (tmp_path / "directory.yaml").write_bytes(BROKEN.joinpath("directory.yaml").read_bytes())
    assert len(text.encode()) < 12_000

    done, seconds, _ = run_validate(path)

    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{path}:1:1: the YAML's aliases (*name) repeat more than 10000 values; write the "
        "values out or use fewer aliases"
    ]
    assert seconds < 30


def test_validate_prints_at_most_200_problems_and_counts_the_rest(tmp_path: Path) -> None:
    # 1,000 obligations, each with an unknown key: 1,000 real problems, no alias.
    head = (
        BROKEN.joinpath("directory-missing.yaml")
        .read_text(encoding="utf-8")
        .split("reporting:")[0]
        .replace("danh-ba.yaml", "directory.yaml")
    )
    entries = "".join(
        f"  - id: bc-{n}\n    title: Báo cáo {n}\n    deliverable: report\n"
        f"    owners: {{agencies: [SNV]}}\n    recipient: SNV\n"
        f"    due: {{kind: fixed, before: 2025-12-15}}\n    tieu_de: x\n"
        for n in range(1000)
    )
    path = tmp_path / "nhieu-loi.yaml"
    path.write_text(f"{head}reporting:\n{entries}", encoding="utf-8")
    (tmp_path / "directory.yaml").write_bytes(BROKEN.joinpath("directory.yaml").read_bytes())

    done, seconds, peak_kb = run_validate(path)

    lines = done.stdout.splitlines()
    assert done.returncode == 1
    assert len(lines) == 201
    assert all("tieu_de" in line for line in lines[:200])
    assert lines[-1] == f"{path}: ... and 800 more problems"
    assert done.stderr.splitlines() == ["1 of 1 files have problems"]
    assert seconds < 60
    assert peak_kb < 1_000_000  # under 1 GB (ru_maxrss is in KB on Linux)


# --------------------------------------------------------------------------------------------
# The last gates: mail lines and headers, the Web UI's summary and details


@pytest.mark.parametrize(
    "hostile",
    # Bidi embeddings and overrides, isolates; zero-width characters, soft hyphen, marks.
    [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]
    + [chr(c) for c in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD, 0x200E, 0x200F)],
)
def test_format_characters_never_reach_a_mail_line_or_the_web_ui(hostile: str) -> None:
    # "Nguyễn" with combining marks (e + U+0302 + U+0303): category Mn, kept.
    nguyen = "Nguye\u0302\u0303n"
    text = f"Báo cáo {hostile}của {nguyen}{hostile}"
    expected = f"Báo cáo của {nguyen}"

    assert one_line(text) == expected
    assert ui_text(text) == expected
    assert clip_summary(text) == expected
    # Cut to the summary's 200 bytes: still nothing hidden, still ending in "…".
    long = clip_summary(hostile * 300 + "x" * 300)
    assert long == "x" * (200 - len("…".encode())) + "…"
