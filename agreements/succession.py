"""Succession files (issue 17): a directory's record that agency A (and B…) is succeeded by C
from a date (merger, abolition with a successor, or a split naming which obligations go where),
applied to running agreements by `accord succession apply FILE`.

File format (YAML; errors name the file, line and field like the agreement loader's):

    schema_version: 1
    tenant: quang-binh
    agencies: [...]      # agencies the changes create (directory `Agency` schema)
    officers: [...]      # their officers (directory `Officer` schema)
    changes:
      - effective: 2025-07-01          # the successor's first day
        document: "Nghị quyết số …, ngày …"
        kind: abolition                # merger | abolition | split
        from: [UBND_DONG_HOI]
        to: UBND_PHUONG_DONG_HOI       # merger / abolition
        # split: [{to: C, obligations: [bao-cao-nam]}, {to: D, obligations: [...]}]

Applying a file sets `active_until` (the day before `effective`) and `successor` on each
`from` agency, adds the new agencies and officers, and sends one `SuccessionRequest` per
effective day (each transfer naming its document) to every running agreement of the tenant.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agreements.models import Agency, AgencyCode, Directory, Officer
from agreements.yaml_files import (
    LoadError,
    Loc,
    Problem,
    YamlDoc,
    closest_name,
    parse_yaml,
    read_text,
    validate_model,
)


class Transfer(BaseModel):
    """Agency `from_agency` is succeeded by `to_agency` on the change's effective day. With
    `obligations` (a split), only those obligations' tasks pass; None: all of them. (The
    engine's payload too: `workflows.payloads.SuccessionRequest`.)"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    from_agency: AgencyCode
    to_agency: AgencyCode
    obligations: list[str] | None = None
    document: str | None = Field(
        default=None,
        max_length=300,
        description="The document deciding this transfer, when the request gathers several "
        "(None: the request's).",
    )


class SplitPart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    to: AgencyCode
    obligations: list[str] = Field(min_length=1)


class SuccessionChange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    effective: date
    document: str = Field(min_length=1, max_length=300)
    kind: Literal["merger", "abolition", "split"]
    from_: list[AgencyCode] = Field(alias="from", min_length=1)
    to: AgencyCode | None = None
    split: list[SplitPart] | None = None

    @model_validator(mode="after")
    def _successor_named(self) -> SuccessionChange:
        if self.kind == "split":
            if self.split is None:
                raise ValueError("a split names its parts: split: [{to: CODE, obligations: [...]}]")
            if self.to is not None:
                raise ValueError("a split names its successors under split:, not to:")
        else:
            if self.to is None:
                raise ValueError(f"a {self.kind} names its successor: to: CODE")
            if self.split is not None:
                raise ValueError(f"only a split has split: parts, not a {self.kind}")
        return self

    def successors(self) -> list[str]:
        """The agencies the change's tasks pass to, in the file's order."""
        if self.to is not None:
            return [self.to]
        return [part.to for part in self.split or []]

    def transfers(self) -> list[Transfer]:
        """The engine's view: one Transfer per (from agency, successor[, obligations])."""
        if self.to is not None:
            return [
                Transfer(from_agency=code, to_agency=self.to, document=self.document)
                for code in self.from_
            ]
        return [
            Transfer(
                from_agency=code,
                to_agency=part.to,
                obligations=list(part.obligations),
                document=self.document,
            )
            for code in self.from_
            for part in self.split or []
        ]


class SuccessionFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    tenant: str
    agencies: list[Agency] = Field(default_factory=list)
    officers: list[Officer] = Field(default_factory=list)
    changes: list[SuccessionChange] = Field(min_length=1)


@dataclass(frozen=True)
class SuccessionGroup:
    """The changes taking effect on one day: what one `SuccessionRequest` carries (each
    transfer names its own document; `document` lists them all)."""

    effective: date
    document: str
    transfers: list[Transfer]
    succession_id: str


def succession_groups(file: SuccessionFile) -> list[SuccessionGroup]:
    """One group per effective day, in the file's order, each with a stable ID: a hash of the
    tenant, the day and the transfers (their documents included), so that applying the same
    file again sends the same IDs (and the agreements change nothing). One request per day, so
    that an agreement applies a day's changes together: a task whose owner and recipient pass
    on the same day (a district abolished, the aggregator merged) gets one notice."""
    grouped: dict[date, list[Transfer]] = {}
    for change in file.changes:
        grouped.setdefault(change.effective, []).extend(change.transfers())
    groups = []
    for effective, transfers in grouped.items():
        documents = list(dict.fromkeys(t.document or "" for t in transfers))
        content = json.dumps(
            {
                "tenant": file.tenant,
                "effective": effective.isoformat(),
                "transfers": [t.model_dump(mode="json") for t in transfers],
            },
            ensure_ascii=False,
            sort_keys=True,
        )
        digest = hashlib.sha256(content.encode("utf-8")).hexdigest()[:20]
        document = "; ".join(documents)
        if len(document) > 300:
            document = document[:299] + "…"
        groups.append(
            SuccessionGroup(effective, document, transfers, f"succession-{effective}-{digest}")
        )
    return groups


# --------------------------------------------------------------------------------------------
# Loading and checking


def load_succession_file(path: Path, directory: Directory | None = None) -> SuccessionFile:
    """Read and check a succession file; a problem raises the loader's error naming the file,
    line and field. With `directory` (the tenant's, as it stands: a file or the database),
    also checks it against it: the tenant, that each `from` agency exists, that each successor
    exists there or in the file's `agencies` and is active on `effective`. (A split's
    obligations are checked against the agreements when applied: `unknown_obligations`.)"""
    file, doc = read_succession_file(path)
    if directory is not None:
        problems = check_succession(file, directory, doc)
        if problems:
            raise LoadError(problems)
    return file


def read_succession_file(path: Path) -> tuple[SuccessionFile, YamlDoc]:
    """The checked file and its YAML document (for positions of later problems)."""
    text, problem = read_text(Path(path))
    if problem:
        raise LoadError([problem])
    assert text is not None
    doc = parse_yaml(text, str(path))
    file = validate_model(doc, SuccessionFile)
    if file is None:
        raise LoadError(doc.problems)
    problems = _check_file(file, doc)
    if problems:
        raise LoadError(problems)
    return file, doc


def _check_file(file: SuccessionFile, doc: YamlDoc) -> list[Problem]:
    """The rules the file keeps on its own."""
    problems: list[Problem] = []
    created: dict[str, Agency] = {}
    for i, agency in enumerate(file.agencies):
        if agency.code in created:
            problems.append(
                doc.problem(("agencies", i, "code"), f"duplicate agency code {agency.code!r}")
            )
        created[agency.code] = agency
    ids: set[str] = set()
    emails: set[str] = set()
    for i, officer in enumerate(file.officers):
        if officer.id in ids:
            problems.append(doc.problem(("officers", i, "id"), f"duplicate officer {officer.id!r}"))
        ids.add(officer.id)
        if officer.email.lower() in emails:
            problems.append(
                doc.problem(("officers", i, "email"), f"duplicate e-mail {officer.email!r}")
            )
        emails.add(officer.email.lower())
    ceasing: dict[str, int] = {}
    for i, change in enumerate(file.changes):
        for j, code in enumerate(change.from_):
            if code in ceasing:
                problems.append(
                    doc.problem(
                        ("changes", i, "from", j),
                        f"agency {code!r} is already succeeded by change {ceasing[code] + 1}; "
                        "an agency ceases once",
                    )
                )
            ceasing.setdefault(code, i)
            if code in change.successors():
                problems.append(
                    doc.problem(("changes", i, "from", j), f"agency {code!r} cannot succeed itself")
                )
        if change.split is not None:
            seen: dict[str, int] = {}
            for k, part in enumerate(change.split):
                for m, obligation in enumerate(part.obligations):
                    if obligation in seen:
                        problems.append(
                            doc.problem(
                                ("changes", i, "split", k, "obligations", m),
                                f"obligation {obligation!r} already goes to "
                                f"{change.split[seen[obligation]].to!r}; a task has one owner",
                            )
                        )
                    seen.setdefault(obligation, k)
    return problems


def check_succession(file: SuccessionFile, directory: Directory, doc: YamlDoc) -> list[Problem]:
    """The file against the tenant's directory (`directory` may already hold what an earlier
    application of the same file added: that is not a conflict)."""
    problems: list[Problem] = []
    if file.tenant != directory.tenant:
        problems.append(
            doc.problem(
                ("tenant",),
                f"the file is for tenant {file.tenant!r}, the directory's tenant is "
                f"{directory.tenant!r}",
            )
        )
        return problems
    known = {agency.code: agency for agency in directory.agencies}
    for i, agency in enumerate(file.agencies):
        existing = known.get(agency.code)
        if existing is not None and (existing.name, existing.kind) != (agency.name, agency.kind):
            problems.append(
                doc.problem(
                    ("agencies", i, "code"),
                    f"agency {agency.code!r} already exists in the directory as "
                    f"{existing.name!r}; choose another code",
                )
            )
    agencies = {**known, **{agency.code: agency for agency in file.agencies}}
    officers = {officer.id: officer for officer in directory.officers}
    emails = {o.email.lower(): o.id for o in directory.officers}
    for i, officer in enumerate(file.officers):
        if officer.agency not in agencies:
            problems.append(
                doc.problem(
                    ("officers", i, "agency"), _unknown(officer.agency, agencies, " or the file")
                )
            )
        existing_officer = officers.get(officer.id)
        if existing_officer is not None and existing_officer.agency != officer.agency:
            problems.append(
                doc.problem(
                    ("officers", i, "id"),
                    f"officer {officer.id!r} already exists in the directory at "
                    f"{existing_officer.agency!r}; choose another ID",
                )
            )
        other = emails.get(officer.email.lower())
        if other is not None and other != officer.id:
            problems.append(
                doc.problem(
                    ("officers", i, "email"),
                    f"e-mail {officer.email!r} is already officer {other!r}'s in the directory",
                )
            )
    for i, change in enumerate(file.changes):
        last_day = change.effective - timedelta(days=1)
        for j, code in enumerate(change.from_):
            loc: Loc = ("changes", i, "from", j)
            ceasing = known.get(code)
            if ceasing is None:
                problems.append(doc.problem(loc, _unknown(code, known, "")))
                continue
            if ceasing.active_until is not None and ceasing.active_until < last_day:
                problems.append(
                    doc.problem(
                        loc,
                        f"agency {code!r} ceased on {ceasing.active_until} already, before "
                        f"{change.effective}",
                    )
                )
            elif ceasing.active_until not in (None, last_day):
                problems.append(
                    doc.problem(
                        loc,
                        f"the directory says agency {code!r} exists until "
                        f"{ceasing.active_until}, not {last_day}",
                    )
                )
            elif ceasing.successor is not None and ceasing.successor not in change.successors():
                problems.append(
                    doc.problem(
                        loc,
                        f"the directory names {agency.successor!r} as {code!r}'s successor already",
                    )
                )
        successors: list[tuple[Loc, str]] = (
            [(("changes", i, "to"), change.to)]
            if change.to is not None
            else [
                (("changes", i, "split", k, "to"), p.to) for k, p in enumerate(change.split or [])
            ]
        )
        for loc, code in successors:
            successor = agencies.get(code)
            if successor is None:
                problems.append(doc.problem(loc, _unknown(code, agencies, " or the file")))
            elif successor.active_from is not None and change.effective < successor.active_from:
                problems.append(
                    doc.problem(
                        loc,
                        f"successor {code!r} exists only from {successor.active_from}, "
                        f"after {change.effective}",
                    )
                )
            elif successor.active_until is not None and successor.active_until < change.effective:
                problems.append(
                    doc.problem(
                        loc,
                        f"successor {code!r} ceased on {successor.active_until}, "
                        f"before {change.effective}",
                    )
                )
    return problems


def _unknown(code: str, known: Iterable[str], where: str) -> str:
    close = closest_name(code, known)
    hint = f" (did you mean {close!r}?)" if close else ""
    return f"unknown agency {code!r}{hint}: not in the directory{where}"


def unknown_obligations(file: SuccessionFile, obligations: set[str]) -> list[str]:
    """The obligations a split names that none of `obligations` (every obligation ID of the
    tenant's running agreements) is: a split must name obligations that exist."""
    named = [
        obligation
        for change in file.changes
        for part in change.split or []
        for obligation in part.obligations
    ]
    return sorted({o for o in named if o not in obligations})


def apply_to_directory(file: SuccessionFile, directory: Directory) -> Directory:
    """The directory after the file: its agencies added (an existing one left as it is), each
    `from` agency given `active_until` (the day before `effective`) and, for a merger or an
    abolition, `successor`; its officers added."""
    ceasing = {code: change for change in file.changes for code in change.from_}
    agencies = []
    for agency in directory.agencies:
        change = ceasing.get(agency.code)
        if change is not None:
            agency = agency.model_copy(
                update={
                    "active_until": change.effective - timedelta(days=1),
                    "successor": change.to if change.to is not None else agency.successor,
                }
            )
        agencies.append(agency)
    codes = {agency.code for agency in agencies}
    agencies += [agency for agency in file.agencies if agency.code not in codes]
    ids = {officer.id for officer in directory.officers}
    officers = [*directory.officers, *(o for o in file.officers if o.id not in ids)]
    return directory.model_copy(update={"agencies": agencies, "officers": officers})
