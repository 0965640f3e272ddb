"""The `accord` command line.

    accord validate PATH...        check agreement files (or every agreement in a folder)
    accord schema [--directory]    print the JSON Schema of an agreement (or directory) file

Each command is one function taking the parsed arguments and returning the exit code, with
one function declaring its arguments; `COMMANDS` at the bottom registers them. To add a
command, write those two functions and add a line there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from agreements.loader import (
    LoadError,
    agreement_files,
    load_agreement,
    load_directory,
    looks_like_directory,
)
from agreements.models import Agreement, Directory

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


# --------------------------------------------------------------------------------------------
# accord validate


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help=(
            "an agreement file, or a folder: every *.yaml agreement in it and below, except "
            "agency directories (files under a directory/ folder, or with agencies: and no "
            "document_number:)"
        ),
    )


def validate(args: argparse.Namespace) -> int:
    """Load every file completely; print one OK line per valid file and every problem found."""
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
        if looks_like_directory(path):  # named explicitly: check it as what it is
            directory = load_directory(path)
            print(
                f"OK {path}: agency directory of {directory.province} — "
                f"{len(directory.agencies)} agencies, {len(directory.officers)} officers"
            )
            return True
        loaded = load_agreement(path)
    except LoadError as error:
        for problem in error.problems:
            print(problem)
        return False
    agreement = loaded.agreement
    dated = sum(1 for occurrence in loaded.occurrences if occurrence.due_at is not None)
    print(
        f"OK {path}: {agreement.agreement_id} — {len(agreement.items)} items, "
        f"{len(agreement.all_obligations())} obligations, "
        f"{len(loaded.occurrences)} task occurrences ({dated} dated)"
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


def schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema, e.g. for an editor's YAML language server."""
    model: type[BaseModel] = Directory if args.directory else Agreement
    title = "Accord agency directory" if args.directory else "Accord agreement"
    document = {"$schema": JSON_SCHEMA_DIALECT, **model.model_json_schema(), "title": title}
    print(json.dumps(document, ensure_ascii=False, indent=2))
    return 0


# --------------------------------------------------------------------------------------------
# Registration


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS = (
    Command(
        "validate",
        "check agreement files and the directories they name; exit 1 if any has problems",
        add_validate_arguments,
        validate,
    ),
    Command(
        "schema",
        "print the JSON Schema of agreement (or directory) files",
        add_schema_arguments,
        schema,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accord", description="Accord: deadlines of inter-agency coordination agreements."
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except BrokenPipeError:
        # The reader went away (`accord validate agreements | head`): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
