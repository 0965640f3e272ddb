"""The directory's `tenant:` as docs/agreement-format.md shows it: its example loads, and the
two mistakes it names are reported with file, line and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agreements.loader import LoadError, load_directory

DOCS = Path(__file__).resolve().parents[2] / "docs" / "agreement-format.md"


def _example() -> str:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("## The directory's tenant")
    end = text.index("\n## ", start + 1)
    [block] = re.findall(r"```yaml\n(.*?)```", text[start:end], re.DOTALL)
    return str(block)


def test_the_documented_directory_loads_with_its_tenant(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(_example(), encoding="utf-8")
    directory = load_directory(path)
    assert directory.tenant == "nghe-an"
    assert directory.province == "Nghệ An"


def test_the_documented_mistakes_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(_example().replace("tenant: nghe-an\n", ""), encoding="utf-8")
    with pytest.raises(LoadError) as missing:
        load_directory(path)
    assert [str(p) for p in missing.value.problems] == [f"{path}:1:1: tenant: field required"]

    path.write_text(_example().replace("tenant: nghe-an", "tenant: Nghệ An"), encoding="utf-8")
    with pytest.raises(LoadError) as named:
        load_directory(path)
    [problem] = [str(p) for p in named.value.problems]
    assert problem.startswith(f"{path}:2:9: tenant: 'Nghệ An' is not an identifier")
