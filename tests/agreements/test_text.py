"""Vietnamese text survives every way an officer's editor may have saved it.

Diacritics typed as combining marks (NFD, as some macOS and web editors produce) must compare
equal to precomposed letters (NFC); a byte-order mark from Windows Notepad must not matter;
bytes that are not UTF-8 must be reported at the line where they are.
"""

from __future__ import annotations

import typing
import unicodedata
from pathlib import Path

import pytest
from pydantic import BaseModel

from agreements.expansion import TaskOccurrence
from agreements.loader import LoadError, load_agreement
from agreements.models import Agreement, Directory

SHARED_DIRECTORY = Path(__file__).parent / "broken" / "directory.yaml"

TITLE = "Kế hoạch phối hợp thực hiện công tác dân vận năm 2025"
OBLIGATION_TITLE = "Báo cáo kết quả tiếp công dân, đối thoại với Nhân dân"

AGREEMENT = f"""\
document_number: 15/KH-SNV-STP
kind: yearly_plan
title: {TITLE}
province: Quảng Bình
parties:
  - agency: SNV
    signatory_title: Giám đốc Sở Nội vụ
  - agency: STP
signed_on: 2025-02-03
period:
  start: 2025-01-01
  end: 2025-12-31
directory: directory.yaml
reporting:
  - id: bao-cao-nam
    title: {OBLIGATION_TITLE}
    deliverable: report
    owners:
      agencies: [SNV, STP]
    recipient: SNV
    due:
      kind: fixed
      before: 2025-12-15
"""


def write(folder: Path, content: str | bytes) -> Path:
    (folder / "directory.yaml").write_bytes(SHARED_DIRECTORY.read_bytes())
    path = folder / "ke-hoach.yaml"
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def test_combining_diacritics_load_as_precomposed_text(tmp_path: Path) -> None:
    decomposed = unicodedata.normalize("NFD", AGREEMENT)
    assert decomposed != AGREEMENT  # the file really uses combining marks
    assert TITLE not in decomposed

    loaded = load_agreement(write(tmp_path, decomposed))

    agreement = loaded.agreement
    assert agreement.title == TITLE
    assert agreement.province == "Quảng Bình"
    assert agreement.parties[0].signatory_title == "Giám đốc Sở Nội vụ"
    assert agreement.reporting[0].title == OBLIGATION_TITLE
    assert all(unicodedata.is_normalized("NFC", o.title) for o in loaded.occurrences)


def test_diacritics_survive_a_json_round_trip(tmp_path: Path) -> None:
    loaded = load_agreement(write(tmp_path, AGREEMENT))

    agreement_json = loaded.agreement.model_dump_json()
    assert TITLE in agreement_json  # stored as letters, not as \\u escapes
    again = Agreement.model_validate_json(agreement_json)
    assert again == loaded.agreement
    assert again.title == TITLE

    for occurrence in loaded.occurrences:
        copy = TaskOccurrence.model_validate_json(occurrence.model_dump_json())
        assert copy == occurrence
        assert copy.title == OBLIGATION_TITLE


def test_file_with_byte_order_mark_loads(tmp_path: Path) -> None:
    loaded = load_agreement(write(tmp_path, b"\xef\xbb\xbf" + AGREEMENT.encode("utf-8")))

    assert loaded.agreement.document_number == "15/KH-SNV-STP"
    assert loaded.agreement.title == TITLE


def test_byte_order_mark_does_not_shift_positions(tmp_path: Path) -> None:
    text = AGREEMENT.replace("agencies: [SNV, STP]", "agencies: [SNV, STPP]")
    path = write(tmp_path, b"\xef\xbb\xbf" + text.encode("utf-8"))

    with pytest.raises(LoadError) as caught:
        load_agreement(path)

    (problem,) = caught.value.problems
    assert (problem.line, problem.col) == (19, 23)
    assert problem.path == "reporting[0].owners.agencies[1]"


def test_windows_line_endings_keep_line_numbers(tmp_path: Path) -> None:
    text = AGREEMENT.replace("agencies: [SNV, STP]", "agencies: [SNV, STPP]")
    path = write(tmp_path, text.replace("\n", "\r\n"))

    with pytest.raises(LoadError) as caught:
        load_agreement(path)

    (problem,) = caught.value.problems
    assert (problem.line, problem.col) == (19, 23)


@pytest.mark.parametrize(
    ("bad", "line", "col"),
    [
        # A Latin-1 byte (0xE3) in a Vietnamese title: the column counts characters, not bytes.
        (AGREEMENT.encode("utf-8").replace("năm 2025".encode(), b"n\xe3m 2025"), 3, 54),
        # A lone continuation byte at the start of a line.
        (AGREEMENT.encode("utf-8").replace(b"province:", b"\x80province:"), 4, 1),
        # A truncated multi-byte sequence at the very end of the file.
        (AGREEMENT.encode("utf-8") + b"# ghi ch\xc3", 24, 9),
    ],
    ids=["latin-1-in-title", "continuation-byte", "truncated-at-end"],
)
def test_invalid_utf8_is_reported_at_its_line(
    tmp_path: Path, bad: bytes, line: int, col: int
) -> None:
    path = write(tmp_path, bad)

    with pytest.raises(LoadError) as caught:
        load_agreement(path)

    assert [str(p) for p in caught.value.problems] == [
        f"{path}:{line}:{col}: file is not valid UTF-8"
    ]


def test_invalid_utf8_after_byte_order_mark_counts_no_mark(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbfdocument_number: 1\xff/KH\n")

    with pytest.raises(LoadError) as caught:
        load_agreement(path)

    (problem,) = caught.value.problems
    assert (problem.line, problem.col) == (1, 19)


def test_every_field_a_person_edits_is_documented() -> None:
    """The JSON Schema gives an editor completion with help: every field says what it is."""
    seen: set[type[BaseModel]] = set()
    undocumented: list[str] = []

    def walk(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            if not field.description:
                undocumented.append(f"{model.__name__}.{name}")
            for part in (field.annotation, *_flatten(field.annotation)):
                if isinstance(part, type) and issubclass(part, BaseModel):
                    walk(part)

    walk(Agreement)
    walk(Directory)
    assert undocumented == []


def _flatten(annotation: object) -> list[object]:
    parts: list[object] = []
    for arg in typing.get_args(annotation):
        parts.append(arg)
        parts.extend(_flatten(arg))
    return parts
