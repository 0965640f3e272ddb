"""Invisible Unicode format characters: found in files, removed from officers' text.

Characters of category Cf (format) change how text is shown without being seen: bidi
embeddings and overrides (U+202A–U+202E) and isolates (U+2066–U+2069) reorder a line, so a
subject can read "báo cáo đã nộp" while saying the opposite; zero-width characters (U+200B–
U+200D, U+2060, U+FEFF) make two equal-looking agency names or task IDs differ. Vietnamese
needs none of them: its tone and vowel marks, typed as combining characters, are category Mn
and stay.

Agreement and directory files refuse them (`yaml_files`, with file, line and field); text an
officer types (a report summary, a reason, a note) has them removed on the way in
(`workflows.payloads`), and every place that writes to a mail header, a mail body or the Web UI
removes them again (`activities.templates.one_line`, `workflows.payloads.ui_text`).

Pure standard library: the bottom of the domain.
"""

from __future__ import annotations

import unicodedata


def format_characters(text: str) -> list[str]:
    """The distinct format (Cf) characters of `text`, in order of first appearance."""
    found: dict[str, None] = {}
    for char in text:
        if unicodedata.category(char) == "Cf":
            found.setdefault(char)
    return list(found)


def without_format_characters(text: str) -> str:
    """`text` with every format (Cf) character removed; combining marks (Mn) are kept."""
    if text.isascii():
        return text
    return "".join(char for char in text if unicodedata.category(char) != "Cf")


def describe(char: str) -> str:
    """'U+202E (RIGHT-TO-LEFT OVERRIDE)': how a problem names an invisible character."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")
