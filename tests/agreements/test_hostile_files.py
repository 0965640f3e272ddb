"""Agreement and directory files written to deceive or to read what they should not (issue 14,
point 6): invisible format characters are refused with file, line and field, Vietnamese
combining marks are not; a `directory:` that leaves the agreement's folder, by `..`, an absolute
path or a symbolic link, is refused. The one-file-per-rule cases are in `broken/`; these need a
folder of their own."""

from __future__ import annotations

import shutil
import unicodedata
from pathlib import Path

import pytest

from agreements.loader import LoadError, load_agreement, load_directory
from agreements.plain_text import without_format_characters

BROKEN = Path(__file__).parent / "broken"
DIRECTORY = BROKEN / "directory.yaml"
AGREEMENT = BROKEN / "directory-missing.yaml"  # valid but for its directory's name


def agreement_in(folder: Path, directory: str) -> Path:
    text = AGREEMENT.read_text(encoding="utf-8").replace(
        "directory: danh-ba.yaml", f"directory: {directory}"
    )
    path = folder / "ke-hoach.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_directory_whose_officer_name_hides_a_bidi_override_is_refused(tmp_path: Path) -> None:
    text = DIRECTORY.read_text(encoding="utf-8")
    # "Trần Thị Bình" shown as "Trần Thị hnìB" would pass a glance at the mail's To line.
    assert "    name: Trần Thị Bình\n" in text
    hostile = text.replace("    name: Trần Thị Bình\n", "    name: Trần Thị \u202ehnìB\u202c\n")
    path = tmp_path / "directory.yaml"
    path.write_text(hostile, encoding="utf-8")
    line = hostile.splitlines().index("    name: Trần Thị \u202ehnìB\u202c") + 1

    with pytest.raises(LoadError) as caught:
        load_directory(path)

    assert [str(p) for p in caught.value.problems] == [
        f"{path}:{line}:11: officers[1].name: invisible format character U+202E "
        "(RIGHT-TO-LEFT OVERRIDE), U+202C (POP DIRECTIONAL FORMATTING) is not allowed; "
        "delete it"
    ]


def test_a_zero_width_space_in_an_agency_code_key_is_refused(tmp_path: Path) -> None:
    text = DIRECTORY.read_text(encoding="utf-8").replace(
        "    kind: department\n", "    ki\u200bnd: x\n", 1
    )
    path = tmp_path / "directory.yaml"
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index("    ki\u200bnd: x") + 1
    with pytest.raises(LoadError) as caught:
        load_directory(path)
    assert any(
        "invisible format character U+200B (ZERO WIDTH SPACE)" in p.message
        and p.line == line
        and p.path == "agencies[0].ki\u200bnd"
        for p in caught.value.problems
    ), caught.value


def test_names_typed_with_combining_marks_load_and_keep_their_marks(tmp_path: Path) -> None:
    # "Nguyễn" as macOS and some web editors save it: e, then U+0302 (circumflex) and U+0303
    # (tilde), category Mn. Not format characters: nothing is refused or removed.
    decomposed = unicodedata.normalize("NFD", "Nguyễn Văn An")
    assert "\u0302" in decomposed and "\u0303" in decomposed
    text = DIRECTORY.read_text(encoding="utf-8").replace("Nguyễn Văn An", decomposed)
    path = tmp_path / "directory.yaml"
    path.write_text(text, encoding="utf-8")

    directory = load_directory(path)

    officer = next(o for o in directory.officers if o.id == "snv-dau-moi")
    assert officer.name == "Nguyễn Văn An"  # the precomposed form (NFC) of the same letters
    assert without_format_characters(decomposed) == decomposed


@pytest.mark.parametrize(
    "written",
    ["../directory.yaml", "sub/../../directory.yaml", "..\\directory.yaml"],
)
def test_a_directory_above_the_agreements_folder_is_refused(tmp_path: Path, written: str) -> None:
    shutil.copyfile(DIRECTORY, tmp_path / "directory.yaml")
    folder = tmp_path / "agreements"
    (folder / "sub").mkdir(parents=True)
    path = agreement_in(folder, written)

    with pytest.raises(LoadError) as caught:
        load_agreement(path)

    if "\\" in written:  # not a separator on POSIX: a file of that name, which does not exist
        expected = f"directory file not found: {written!r}"
    else:
        expected = (
            f"directory file {written!r} is outside the agreement's folder {folder}; keep the "
            "directory in that folder or below it (e.g. directory/ten-tinh.yaml)"
        )
    assert [str(p) for p in caught.value.problems] == [f"{path}:13:12: directory: {expected}"]


def test_a_symbolic_link_to_a_directory_outside_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "secret.yaml"
    outside.parent.mkdir()
    shutil.copyfile(DIRECTORY, outside)
    folder = tmp_path / "agreements"
    (folder / "directory").mkdir(parents=True)
    (folder / "directory" / "tinh.yaml").symlink_to(outside)
    path = agreement_in(folder, "directory/tinh.yaml")

    with pytest.raises(LoadError) as caught:
        load_agreement(path)

    assert [str(p) for p in caught.value.problems] == [
        f"{path}:13:12: directory: directory file 'directory/tinh.yaml' is outside the "
        f"agreement's folder {folder}; keep the directory in that folder or below it "
        "(e.g. directory/ten-tinh.yaml)"
    ]


def test_a_directory_below_the_folder_and_a_link_inside_it_load(tmp_path: Path) -> None:
    folder = tmp_path / "agreements"
    (folder / "directory").mkdir(parents=True)
    shutil.copyfile(DIRECTORY, folder / "directory" / "quang-binh.yaml")
    (folder / "danh-ba.yaml").symlink_to(folder / "directory" / "quang-binh.yaml")
    assert load_agreement(agreement_in(folder, "directory/quang-binh.yaml")).directory
    assert load_agreement(agreement_in(folder, "danh-ba.yaml")).directory
