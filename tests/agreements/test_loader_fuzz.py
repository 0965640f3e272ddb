"""Whatever an officer types, the loader answers with an `Agreement` or a `LoadError`.

A crash (any other exception) would show a Python traceback instead of the file and line to
fix, so these properties feed the loader arbitrary text, arbitrary YAML documents and valid
agreements with random parts replaced, and check that every problem points inside the file
on a single line.
"""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agreements.loader import LoadError, load_directory, parse_agreement
from agreements.models import Agreement, Directory
from agreements.yaml_files import MAX_ALIAS_VALUES, MAX_YAML_VALUES

FILE = "fuzz.yaml"
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DIRECTORY: Directory = load_directory(Path(__file__).parent / "broken" / "directory.yaml")

VALID: dict[str, Any] = {
    "schema_version": 1,
    "document_number": "05/CTr-UBND-MTTQ",
    "kind": "multi_year_programme",
    "title": "Chương trình phối hợp thực hiện công tác dân vận giai đoạn 2025-2026",
    "province": "Quảng Bình",
    "issuer": "UBND tỉnh Quảng Bình",
    "parties": [
        {"agency": "UBND_TINH", "signatory_title": "Chủ tịch UBND tỉnh"},
        {"agency": "SNV"},
    ],
    "signed_on": date(2025, 1, 10),
    "period": {"start": date(2025, 1, 1), "end": date(2026, 12, 31)},
    "time_zone": "Asia/Ho_Chi_Minh",
    "legal_bases": ["Quy chế công tác dân vận của hệ thống chính trị"],
    "directory": "directory.yaml",
    "defaults": {
        "reminders": {"before": ["7d", "1d"], "notify": ["focal_point"]},
        "escalation": [
            {"after": "1d", "notify": ["head_of_agency"]},
            {"after": "5wd", "notify": ["provincial_leadership"]},
        ],
    },
    "items": [
        {
            "number": "II.1",
            "title": "Tiếp công dân, đối thoại với Nhân dân",
            "text": "Các sở, ngành tổ chức tiếp công dân định kỳ.",
            "lead": {"agencies": ["SNV"]},
            "coordinating": {"groups": ["so_ban_nganh"], "excluding": ["SNV"]},
            "obligations": [
                {
                    "id": "bao-cao-6-thang",
                    "title": "Báo cáo kết quả tiếp công dân sáu tháng",
                    "deliverable": "report",
                    "owners": {"groups": ["so_ban_nganh", "ubnd_cap_huyen"]},
                    "recipient": "SNV",
                    "due": {
                        "kind": "recurring",
                        "month": "6,12",
                        "day": 15,
                        "label": "{year}-{month}",
                    },
                    "indicators": [
                        {"code": "cong-dan", "label": "Số lượt công dân được tiếp"},
                        {
                            "code": "mo-hinh",
                            "label": "Mô hình Dân vận khéo",
                            "kind": "breakdown",
                            "categories": ["Kinh tế", "Văn hóa - xã hội"],
                        },
                    ],
                    "notifications": {
                        "reminders": {"before": ["3d"], "notify": ["focal_point", "aggregator"]},
                        "escalation": [{"after": "2d", "notify": ["head_of_agency"]}],
                    },
                    "source": "Mục II.1 của Chương trình",
                },
            ],
        },
        {
            "number": "II.2",
            "title": "Kiểm tra việc thực hiện Quy chế dân chủ",
            "lead": {"agencies": ["STP"]},
            "obligations": [
                {
                    "id": "so-ket",
                    "title": "Sơ kết một năm thực hiện",
                    "deliverable": "inspection",
                    "owners": {"agencies": ["STP"]},
                    "due": {"kind": "relative", "years": 1, "label": "so-ket"},
                    "assumed": "Văn bản không ghi ngày; giả định sau một năm.",
                },
                {
                    "id": "theo-doi",
                    "title": "Theo dõi thường xuyên",
                    "deliverable": "other",
                    "owners": {"agencies": ["UBND_LE_THUY"]},
                    "due": {"kind": "none"},
                },
            ],
        },
    ],
    "reporting": [
        {
            "id": "bao-cao-nam",
            "title": "Báo cáo tổng kết năm",
            "deliverable": "report",
            "owners": {"agencies": ["SNV", "STP"]},
            "recipient": "UBND_TINH",
            "due": {"kind": "fixed", "before": date(2025, 12, 15), "label": "nam-2025"},
        },
    ],
    "source": {"document": "seed/05-ctr.pdf", "declared_item_count": 5},
}


def dump(document: Any) -> str:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def line_breaks(text: str) -> int:
    # YAML counts these as line breaks, and `\r\n` as one.
    return sum(text.count(c) for c in "\n\r\x85\u2028\u2029") - text.count("\r\n")


def outcome(text: str) -> Agreement | LoadError:
    """The loader's answer; any other exception fails the calling test."""
    try:
        return parse_agreement(text, FILE, DIRECTORY)
    except LoadError as error:
        assert error.problems, "a LoadError must say what is wrong"
        last_line = line_breaks(text) + 1
        for problem in error.problems:
            assert problem.file == FILE
            assert 1 <= problem.line <= last_line, str(problem)
            assert problem.col >= 1, str(problem)
            assert problem.message
            assert "\n" not in str(problem) and "\r" not in str(problem), str(problem)
        return error


def test_the_fuzzing_seed_is_valid() -> None:
    agreement = outcome(dump(VALID))
    assert isinstance(agreement, Agreement)
    assert agreement.document_number == "05/CTr-UBND-MTTQ"


# --------------------------------------------------------------------------------------------
# (a) Arbitrary text


@FUZZ
@given(st.text())
def test_arbitrary_text(text: str) -> None:
    outcome(text)


YAML_ALPHABET = st.sampled_from(
    [*"abkSNV0129-_.:,[]{}&*!|>#'\"?%@`~ \t\n", "\r\n", "  ", "- ", ": ", "\ufeff", "ế"]
)


YAML_SNIPPETS = st.lists(YAML_ALPHABET, max_size=6).map("".join)


@FUZZ
@given(st.lists(YAML_ALPHABET, max_size=80).map("".join))
def test_text_made_of_yaml_punctuation(text: str) -> None:
    outcome(text)


@FUZZ
@given(st.data())
def test_valid_text_with_random_edits(data: st.DataObject) -> None:
    text = dump(VALID)
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        start = data.draw(st.integers(0, len(text)), label="start")
        end = data.draw(st.integers(start, min(len(text), start + 12)), label="end")
        insert = data.draw(YAML_SNIPPETS | st.text(max_size=3), label="insert")
        text = text[:start] + insert + text[end:]
    outcome(text)


# --------------------------------------------------------------------------------------------
# (b) Arbitrary YAML documents, and valid agreements with random parts


def field_names(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {name for value in node.values() for name in field_names(value)}
    if isinstance(node, list):
        return {name for value in node for name in field_names(value)}
    return set()


KEYS = st.sampled_from(sorted(field_names(VALID))) | st.text(max_size=10)

INTERESTING = st.sampled_from(
    [
        "SNV", "SNVV", "snv", "UBND_LE_THUY", "so_ban_nganh", "so_nganh", "",
        "7d", "7 weeks", "0m", "99999wd", "100000d", "5wd",
        "6,12", "*/0", "13", "2-1", "last", "L", "{year}", "{month}", "{nope}", "{0}",
        "fixed", "recurring", "relative", "none", "monthly",
        "focal_point", "aggregator", "provincial_leadership", "head",
        "report", "breakdown", "Asia/Ho_Chi_Minh", "Mars/Base",
        date(2025, 2, 28), date(2024, 2, 29), date(2027, 1, 1), date(2000, 1, 1),
        date(1, 1, 1), date(9999, 12, 31), "2025-02-30", "mười tháng Một",
        0, -1, 1, 12, 31, 99_999, 10**30, True, None, 1.5, float("nan"), float("inf"),
    ]
)  # fmt: skip

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.dates()
    | st.datetimes()
    | INTERESTING
)

DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=25,
)


@FUZZ
@given(DOCUMENTS)
def test_arbitrary_yaml_document(document: Any) -> None:
    outcome(dump(document))


@FUZZ
@given(st.dictionaries(KEYS, DOCUMENTS, max_size=8))
def test_arbitrary_yaml_mapping(document: dict[str, Any]) -> None:
    outcome(dump(document))


def paths(node: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every place in a document a value can be replaced, outermost first."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


VALID_PATHS = paths(VALID)


def replace(document: Any, path: tuple[str | int, ...], value: Any, *, delete: bool) -> None:
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


@FUZZ
@given(st.data())
def test_valid_agreement_with_random_parts_replaced(data: st.DataObject) -> None:
    document = copy.deepcopy(VALID)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        live = paths(document)
        if not live:
            break
        path = data.draw(st.sampled_from(live), label="path")
        action = data.draw(st.sampled_from(["replace", "delete", "add key"]), label="action")
        value = data.draw(DOCUMENTS, label="value")
        if action == "add key" and isinstance(target := _at(document, path), dict):
            target[data.draw(KEYS, label="key")] = value
        else:
            replace(document, path, value, delete=action == "delete")
    outcome(dump(document))


def _at(document: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        document = document[part]
    return document


@FUZZ
@given(st.sampled_from(VALID_PATHS), INTERESTING)
def test_each_field_of_a_valid_agreement_with_an_interesting_value(
    path: tuple[str | int, ...], value: Any
) -> None:
    document = copy.deepcopy(VALID)
    replace(document, path, value, delete=False)
    outcome(dump(document))


# --------------------------------------------------------------------------------------------
# YAML features the loader refuses


def assert_refused(text: str, message: str) -> None:
    result = outcome(text)
    assert isinstance(result, LoadError)
    assert any(message in problem.message for problem in result.problems), result


@pytest.mark.parametrize(
    "text",
    [
        "a: &x [*x]\n",
        "a: &x {b: *x}\n",
        "items: &x\n  - number: 1\n    title: t\n    obligations: *x\n",
    ],
    ids=["sequence", "mapping", "agreement-shaped"],
)
def test_recursive_alias_is_refused(text: str) -> None:
    assert_refused(text, "recursive YAML alias is not allowed")


@pytest.mark.parametrize("depth", [100, 5_000, 100_000])
def test_deep_flow_nesting_is_refused(depth: int) -> None:
    assert_refused("items: " + "[" * depth + "]" * depth + "\n", "nesting too deep")


def test_deep_block_nesting_is_refused() -> None:
    text = "items:\n" + "".join(" " * level + "- a:\n" for level in range(1, 400, 2))
    assert_refused(text, "nesting too deep")


def test_alias_bomb_is_refused() -> None:
    # Ten levels of ten aliases each would expand to ten billion strings.
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, 10)]
    assert_refused("\n".join(lines) + "\n", f"repeat more than {MAX_ALIAS_VALUES} values")


def test_a_file_of_too_many_values_without_aliases_is_refused() -> None:
    # 210,000 one-letter values: about 420 KB, under the file size limit.
    text = "title: [" + "x, " * 210_000 + "x]\n"
    assert_refused(text, f"expands to more than {MAX_YAML_VALUES} values")


@pytest.mark.parametrize(
    "tagged",
    [
        "title: !!python/object:agreements.models.Agreement {}",
        "title: !!python/object/apply:os.mkdir [{target}]",
        "title: !!python/name:os.system ''",
        "title: !!python/object/new:pathlib.Path [{target}]",
        "period: !!python/object:agreements.models.Period {start: 2025-01-01, end: 2025-12-31}",
        "owners: !!set {SNV: null}",
        "title: !custom Kế hoạch",
    ],
)
def test_python_and_unknown_tags_are_refused(tagged: str, tmp_path: Path) -> None:
    target = tmp_path / "created-by-yaml"
    line = tagged.replace("{target}", repr(str(target)))
    document = {key: value for key, value in VALID.items() if key not in {"title", "period"}}
    text = dump(document) + line + "\n"

    result = outcome(text)

    assert isinstance(result, LoadError)
    assert not target.exists()
    assert any(
        "tag" in problem.message and problem.line == text.count("\n") for problem in result.problems
    ), result


# --------------------------------------------------------------------------------------------
# Regressions found by fuzzing


@pytest.mark.parametrize("zone", ["Asia", "x" * 300], ids=["tzdata-folder", "name-too-long"])
def test_time_zone_the_system_cannot_open_is_a_load_error(zone: str) -> None:
    # ZoneInfo raises IsADirectoryError / OSError for these, not ZoneInfoNotFoundError.
    document = copy.deepcopy(VALID)
    document["time_zone"] = zone

    result = outcome(dump(document))

    assert isinstance(result, LoadError)
    assert [p.message for p in result.problems] == [f"unknown time zone {zone!r}"]


@pytest.mark.parametrize(
    ("start", "end", "due"),
    [
        (
            date(1, 1, 1),
            date(1, 12, 31),
            {"kind": "recurring", "month": 5, "day": 15, "label": "y"},
        ),
        (date(9990, 1, 1), date(9999, 12, 31), {"kind": "relative", "years": 50}),
        (date(2025, 1, 1), date(9999, 12, 31), {"kind": "fixed", "before": date(9999, 12, 31)}),
    ],
    ids=["year-1", "relative-past-9999", "fixed-on-9999-12-31"],
)
def test_dates_at_the_ends_of_the_calendar_are_load_errors(
    start: date, end: date, due: dict[str, Any]
) -> None:
    document = copy.deepcopy(VALID)
    document["period"] = {"start": start, "end": end}
    document["reporting"][0]["due"] = due

    result = outcome(dump(document))

    assert isinstance(result, LoadError)
    assert any("outside the supported years" in p.message for p in result.problems), result


@pytest.mark.parametrize("text", ["~\n", "---\n", "!\n", "null\n"])
def test_document_that_is_only_null_says_what_is_wrong(text: str) -> None:
    result = outcome(text)

    assert isinstance(result, LoadError)
    assert [p.message for p in result.problems] == ["the file must be a YAML mapping"]
