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
(effective, document) to every running agreement of the tenant.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agreements.models import Agency, AgencyCode, Officer


class Transfer(BaseModel):
    """Agency `from_agency` is succeeded by `to_agency` on the change's effective day. With
    `obligations` (a split), only those obligations' tasks pass; None: all of them. (The
    engine's payload too: `workflows.payloads.SuccessionRequest`.)"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    from_agency: AgencyCode
    to_agency: AgencyCode
    obligations: list[str] | None = None


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

    def transfers(self) -> list[Transfer]:
        """The engine's view: one Transfer per (from agency, successor[, obligations])."""
        raise NotImplementedError


class SuccessionFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    tenant: str
    agencies: list[Agency] = Field(default_factory=list)
    officers: list[Officer] = Field(default_factory=list)
    changes: list[SuccessionChange] = Field(min_length=1)


def load_succession_file(path: Path) -> SuccessionFile:
    """Read and check a succession file; a problem raises the loader's error naming the file,
    line and field (unknown agencies, successors that do not exist on `effective`, a split
    naming unknown obligations are checked against the directory when applied)."""
    raise NotImplementedError
