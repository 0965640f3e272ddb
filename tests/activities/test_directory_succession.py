"""The directory in the database after a succession (issue 17): who is found by province on a
given day, and what deploying the unchanged directory file again keeps. A real SQLite
database; the shipped Quảng Bình directory and its 2025 reorganisation file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from agreements.loader import load_directory
from agreements.models import OfficerRole
from agreements.succession import apply_to_directory, load_succession_file
from infra.db import (
    OfficerRow,
    active_officers,
    create_schema,
    make_engine,
    session_factory,
    stored_directory,
    upsert_directory,
    write_directory,
)

SHIPPED = Path(__file__).resolve().parents[2] / "agreements" / "directory"
QUANG_BINH = load_directory(SHIPPED / "quang-binh.yaml")
REORGANISATION = load_succession_file(SHIPPED / "quang-binh-2025-reorganisation.yaml")


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """The Quảng Bình directory deployed, then the reorganisation applied to the database."""
    engine = make_engine(f"sqlite:///{tmp_path / 'accord.db'}")
    create_schema(engine)
    factory = session_factory(engine)
    with factory() as session:
        upsert_directory(session, directory=QUANG_BINH)
        stored = stored_directory(session, tenant="quang-binh")
        assert stored is not None
        write_directory(session, directory=apply_to_directory(REORGANISATION, stored))
        session.commit()
    yield factory
    engine.dispose()


def ids(found: list[tuple[OfficerRow, str]]) -> list[str]:
    return [officer.id for officer, _ in found]


def leadership(session: Session, day: date) -> list[str]:
    return ids(
        active_officers(
            session,
            tenant="quang-binh",
            roles=[OfficerRole.PROVINCIAL_LEADERSHIP],
            provinces=["Quảng Bình"],
            on=day,
        )
    )


def test_province_wide_roles_follow_the_agencies_existing_that_day(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        assert leadership(session, date(2025, 5, 15)) == ["lanh-dao-ubnd-tinh"]
        assert leadership(session, date(2025, 6, 30)) == ["lanh-dao-ubnd-tinh"]
        assert leadership(session, date(2025, 7, 1)) == ["lanh-dao-qt-ubnd-tinh"]
        assert leadership(session, date(2025, 11, 14)) == ["lanh-dao-qt-ubnd-tinh"]
        # Without a day (callers that have none): both, as before.
        assert ids(
            active_officers(
                session,
                tenant="quang-binh",
                roles=[OfficerRole.PROVINCIAL_LEADERSHIP],
                provinces=["Quảng Bình"],
            )
        ) == ["lanh-dao-qt-ubnd-tinh", "lanh-dao-ubnd-tinh"]


def test_an_agency_named_by_the_workflow_is_reached_after_its_last_day(
    sessions: sessionmaker[Session],
) -> None:
    """The transfer mail tells the former agency's head on the effective day."""
    with sessions() as session:
        found = active_officers(
            session,
            tenant="quang-binh",
            roles=[OfficerRole.HEAD],
            agencies=["SNV"],
            on=date(2025, 7, 1),
        )
    assert ids(found) == ["thu-truong-snv"]


def test_deploying_the_directory_file_again_keeps_the_succession(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        upsert_directory(session, directory=QUANG_BINH)
        after = stored_directory(session, tenant="quang-binh")
    assert after is not None
    snv = after.agency("SNV")
    assert snv is not None
    assert (snv.active_until, snv.successor) == (date(2025, 6, 30), "QT_SNV")
    qt_snv = after.agency("QT_SNV")
    assert qt_snv is not None and qt_snv.active_from == date(2025, 7, 1)
    assert {"dau-moi-qt-snv", "thu-truong-qt-snv", "dau-moi-snv"} <= {o.id for o in after.officers}


@pytest.mark.parametrize("everywhere", [False, True])
def test_admins_told_are_those_of_agencies_existing_that_day(
    sessions: sessionmaker[Session], everywhere: bool
) -> None:
    def admins(day: date) -> list[str]:
        return ids(
            active_officers(
                session,
                tenant="quang-binh",
                roles=[OfficerRole.ADMIN],
                provinces=[] if everywhere else ["Quảng Bình"],
                everywhere=everywhere,
                on=day,
            )
        )

    with sessions() as session:
        assert admins(date(2025, 5, 15)) == ["quan-tri-snv"]
        assert admins(date(2025, 11, 14)) == ["quan-tri-qt-snv"]
