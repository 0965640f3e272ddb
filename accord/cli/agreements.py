"""`accord validate` and `accord schema`: agreement files checked, and their JSON Schema.

These commands read files only: they never talk to the engine, so they work without Temporal
or a database (in CI, in an editor).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel

from agreements.loader import (
    LoadError,
    agreement_files,
    load_agreement,
    load_directory,
    looks_like_directory,
    looks_like_succession,
    warning_line,
)
from agreements.models import Agreement, Directory
from agreements.succession import SuccessionFile, load_succession_file

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

MAX_PROBLEMS_SHOWN = 200
"""Problems printed per file; the rest are counted on one line. Enough to fix a real file in
one pass, and a file made to produce a million problems prints a screenful."""


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help=(
            "an agreement file, or a folder: every *.yaml agreement in it and below, except "
            "agency directories and calendars (files under directory/ or calendars/, or with "
            "agencies: and no "
            "document_number:)"
        ),
    )


def validate(args: argparse.Namespace) -> int:
    """Load every file completely; print one OK line per valid file, its warnings (which do
    not fail it) and every problem found."""
    paths: list[Path] = args.paths
    checked = failed = 0
    empty_folder = False
    for path in paths:
        files = agreement_files(path) if path.is_dir() else [path]
        if not files:
            # Validating nothing must not pass, e.g. in CI after a folder was moved.
            print(f"{path}: no agreement files found")
            empty_folder = True
        for file in files:
            checked += 1
            failed += not check_file(file)
    if failed:
        print(f"{failed} of {checked} files have problems", file=sys.stderr)
    return 1 if failed or empty_folder else 0


def check_file(path: Path) -> bool:
    try:
        if looks_like_succession(path):
            return check_succession_file(path)
        if looks_like_directory(path):  # named explicitly: check it as what it is
            directory = load_directory(path)
            print(
                f"OK {path}: agency directory of {directory.province} — "
                f"{len(directory.agencies)} agencies, {len(directory.officers)} officers"
            )
            return True
        loaded = load_agreement(path)
    except LoadError as error:
        for problem in error.problems[:MAX_PROBLEMS_SHOWN]:
            print(problem)
        more = len(error.problems) - MAX_PROBLEMS_SHOWN
        if more > 0:
            print(f"{path}: ... and {more} more problem{'s' if more > 1 else ''}")
        return False
    agreement = loaded.agreement
    dated = sum(1 for occurrence in loaded.occurrences if occurrence.due_at is not None)
    count = len(loaded.warnings)
    warned = f", {count} warning{'s' if count > 1 else ''}" if count else ""
    print(
        f"OK {path}: {agreement.agreement_id} — {len(agreement.items)} items, "
        f"{len(agreement.all_obligations())} obligations, "
        f"{len(loaded.occurrences)} task occurrences ({dated} dated){warned}"
    )
    # Warnings do not fail validation: the agreement runs, but not entirely as written.
    for warning in loaded.warnings:
        print(warning_line(warning))
    return True


def check_succession_file(path: Path) -> bool:
    """A succession file, checked against the directory of its tenant in the same folder when
    there is one (the database's directory is checked by `accord succession apply`)."""
    alone = load_succession_file(path)
    directory = next(
        (
            found
            for other in sorted(path.parent.glob("*.yaml"))
            if other != path and looks_like_directory(other)
            for found in [load_directory(other)]
            if found.tenant == alone.tenant
        ),
        None,
    )
    file = alone if directory is None else load_succession_file(path, directory)
    against = (
        "no directory of its tenant next to it"
        if directory is None
        else f"checked against the directory of {directory.province}"
    )
    transfers = sum(len(change.transfers()) for change in file.changes)
    print(
        f"OK {path}: succession file of {file.tenant} — {len(file.changes)} changes, "
        f"{transfers} transfers, {len(file.agencies)} new agencies, {len(file.officers)} "
        f"officers ({against})"
    )
    return True


# --------------------------------------------------------------------------------------------
# accord schema


def add_schema_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--directory",
        action="store_true",
        help="print the schema of an agency directory file instead of an agreement file",
    )
    parser.add_argument(
        "--succession",
        action="store_true",
        help="print the schema of a succession file (accord succession apply) instead",
    )


def schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema, e.g. for an editor's YAML language server."""
    model: type[BaseModel] = Agreement
    title = "Accord agreement"
    if args.directory:
        model, title = Directory, "Accord agency directory"
    elif args.succession:
        model, title = SuccessionFile, "Accord succession file"
    document = {"$schema": JSON_SCHEMA_DIALECT, **model.model_json_schema(), "title": title}
    print(json.dumps(document, ensure_ascii=False, indent=2))
    return 0
