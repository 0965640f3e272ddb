"""Secrets and files (issue 14, point 7): the database URL's password never appears in a repr,
a message or a traceback, a failed connection is one line; an SMTP login without TLS is refused
at start; `.env` comes from `ACCORD_ENV_FILE` or the project root, never from the folder a
command runs in; the data folder and what Accord creates in it are readable by their owner
only."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import aiosmtplib
import pytest
from ports import free_ports
from postgres import throwaway_cluster
from pydantic import ValidationError

from accord.embedded import DevServer, MailSink
from infra import db, migrations
from infra.settings import Settings, SmtpSettings, settings_problems

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "mat-khau-bi-mat-7Qx"
OFFICER = "snv-dau-moi"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def clean_environment(**extra: str) -> dict[str, str]:
    """The test process's environment without any ACCORD_* variable but an operator's
    credential (so that acting commands get as far as the database), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    operator = {"ACCORD_CLAIMS__OPERATOR": "van-hanh", "ACCORD_CLAIMS__KEY": "k" * 40}
    return env | operator | extra


def accord(cwd: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord.cli", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_report(folder: Path) -> Path:
    report = folder / "bao-cao.yaml"
    report.write_text("summary: Báo cáo\n", encoding="utf-8")
    return report


# --------------------------------------------------------------------------------------------
# The database URL is a secret


def test_the_database_password_is_in_no_repr_and_no_settings_error() -> None:
    url = f"postgresql+psycopg://accord:{PASSWORD}@db.example/accord"
    settings = Settings(database_url=url)

    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)
    assert PASSWORD not in settings.model_dump_json()
    assert settings.resolved_database_url == url  # what the engine is given
    assert db.shown_url(url) == "postgresql+psycopg://accord:***@db.example/accord"

    with pytest.raises(ValidationError) as caught:
        Settings(database_url=url, smtp={"port": 0, "username": "a", "password": PASSWORD})
    assert settings_problems(caught.value) == (
        "smtp.port: Input should be greater than or equal to 1"
    )


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    [port] = free_ports(1)  # nothing listens there
    url = f"postgresql+psycopg://accord:{PASSWORD}@127.0.0.1:{port}/accord"
    env = clean_environment(ACCORD_DATABASE_URL=url, ACCORD_ENV_FILE=os.devnull)

    done = accord(
        tmp_path, env, "submit", "x/y/SNV/2024", "--file", str(write_report(tmp_path)),
        "--as", OFFICER,
    )  # fmt: skip

    assert done.returncode == 1
    assert PASSWORD not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    shown = f"postgresql+psycopg://accord:***@127.0.0.1:{port}/accord"
    assert line.startswith(
        f"accord submit: cannot open the database {shown} (ACCORD_DATABASE_URL): "
    )


def test_a_wrong_database_password_is_one_line_without_either_password(tmp_path: Path) -> None:
    with throwaway_cluster(superuser="accord", password="mat-khau-dung") as cluster:
        port = cluster.port
        url = cluster.url("accord", password=PASSWORD)
        env = clean_environment(ACCORD_DATABASE_URL=url, ACCORD_ENV_FILE=os.devnull)

        done = accord(
            tmp_path, env, "submit", "x/y/SNV/2024", "--file", str(write_report(tmp_path)),
            "--as", OFFICER,
        )  # fmt: skip

        right = url.replace(PASSWORD, "mat-khau-dung")
        with pytest.raises(db.DatabaseUnavailable):
            db.open_engine(url)
        db.open_engine(right, upgrade=True).dispose()  # the server itself is fine

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        f"accord submit: cannot open the database postgresql+psycopg://accord:***@127.0.0.1:"
        f"{port}/postgres (ACCORD_DATABASE_URL): connection failed: connection to server at "
        f'"127.0.0.1", port '
        f'{port} failed: FATAL: password authentication failed for user "accord"'
    ]


def test_the_worker_reports_a_database_failure_in_one_line(tmp_path: Path) -> None:
    [port] = free_ports(1)
    url = f"postgresql+psycopg://accord:{PASSWORD}@127.0.0.1:{port}/accord"
    env = clean_environment(
        ACCORD_DATABASE_URL=url, ACCORD_ENV_FILE=os.devnull, ACCORD_DATA_DIR=str(tmp_path)
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "worker.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert PASSWORD not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [line] = [x for x in done.stderr.splitlines() if not x.startswith("INFO:")]
    assert line.startswith("worker: cannot open the database postgresql+psycopg://accord:***@")


# --------------------------------------------------------------------------------------------
# SMTP credentials need TLS


def test_an_smtp_login_without_tls_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        SmtpSettings(host="relay.example", username="accord", password=PASSWORD, security="none")
    assert settings_problems(caught.value) == (
        "Value error, ACCORD_SMTP__USERNAME and ACCORD_SMTP__PASSWORD need "
        "ACCORD_SMTP__SECURITY=starttls or tls: a login without TLS would send the password "
        "in clear"
    )
    for security in ("starttls", "tls"):
        allowed = SmtpSettings(username="accord", password=PASSWORD, security=security)
        assert allowed.password is not None

    env = clean_environment(
        ACCORD_ENV_FILE=os.devnull,
        ACCORD_DATA_DIR=str(tmp_path / "data"),
        ACCORD_SMTP__USERNAME="accord",
        ACCORD_SMTP__PASSWORD=PASSWORD,
        ACCORD_SMTP__EMBEDDED="false",
        ACCORD_SMTP__HOST="relay.example",
    )
    refusal = (
        "invalid ACCORD_* settings: smtp: Value error, ACCORD_SMTP__USERNAME and "
        "ACCORD_SMTP__PASSWORD need ACCORD_SMTP__SECURITY=starttls or tls: a login without "
        "TLS would send the password in clear"
    )
    done = accord(tmp_path, env, "run", "--no-deploy")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"accord run: {refusal}"]
    worker = subprocess.run(
        [sys.executable, str(ROOT / "worker.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 2
    assert worker.stderr.splitlines() == [f"worker: {refusal}"]
    # Not even a piece of the password (pydantic's own message quotes the values, cut short).
    assert PASSWORD[-4:] not in done.stderr + worker.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was started


# --------------------------------------------------------------------------------------------
# Where .env comes from


def upgraded(path: Path) -> None:
    """A new SQLite database at `path`, migrated."""
    engine = db.make_engine(f"sqlite:///{path}")
    migrations.upgrade(engine)
    engine.dispose()


def test_a_dot_env_in_the_working_folder_is_ignored(tmp_path: Path) -> None:
    # Planted in the folder the command runs in: it would send the officer lookup (and every
    # report) to someone else's database.
    (tmp_path / ".env").write_text(
        f"ACCORD_DATABASE_URL=postgresql+psycopg://ke-gian:{PASSWORD}@127.0.0.1:1/lay-cap\n"
        "ACCORD_LOCALE=xx\n",
        encoding="utf-8",
    )
    data = tmp_path / "data"
    env = clean_environment(ACCORD_DATA_DIR=str(data))
    assert not (ROOT / ".env").exists(), "a .env in the project root would be read"
    upgraded(data / "accord.db")  # `accord db upgrade`: a command creates no tables

    done = accord(
        tmp_path, env, "submit", "x/y/SNV/2024", "--file", str(write_report(tmp_path)),
        "--as", OFFICER,
    )  # fmt: skip

    # The default SQLite database in ACCORD_DATA_DIR was used (and knows no agreement).
    assert done.returncode == 2
    assert done.stderr.startswith("accord submit: unknown agreement 'x'")
    assert (data / "accord.db").is_file()


def test_accord_env_file_is_honoured(tmp_path: Path) -> None:
    elsewhere = tmp_path / "cau-hinh"
    elsewhere.mkdir()
    chosen = elsewhere / "accord.env"
    chosen.write_text(f"ACCORD_DATA_DIR={elsewhere / 'du-lieu'}\n", encoding="utf-8")
    workdir = tmp_path / "lam-viec"
    workdir.mkdir()
    env = clean_environment(ACCORD_ENV_FILE=str(chosen))
    upgraded(
        elsewhere / "du-lieu" / "accord.db"
    )  # `accord db upgrade`: a command creates no tables

    done = accord(
        workdir, env, "submit", "x/y/SNV/2024", "--file", str(write_report(workdir)),
        "--as", OFFICER,
    )  # fmt: skip

    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("accord submit: unknown agreement 'x'")
    assert (elsewhere / "du-lieu" / "accord.db").is_file()
    assert not (workdir / "data").exists()

    missing = clean_environment(ACCORD_ENV_FILE=str(tmp_path / "khong-co.env"))
    done = accord(workdir, missing, "status")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"accord status: invalid ACCORD_* settings: ACCORD_ENV_FILE={tmp_path / 'khong-co.env'}:"
        " no such file"
    ]


# --------------------------------------------------------------------------------------------
# The data folder is its owner's


def test_a_new_sqlite_database_and_its_folder_are_the_owners_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "accord.db"
    engine = db.open_engine(f"sqlite:///{path}", upgrade=True)
    with engine.begin() as connection:  # WAL mode: a write creates -wal and -shm files
        connection.exec_driver_sql("CREATE TABLE t (x)")
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        found = sorted(p.name for p in path.parent.iterdir())
        modes = {p.name: mode(p) for p in path.parent.iterdir()}
    engine.dispose()

    assert mode(path.parent) == 0o700
    assert "accord.db-wal" in found
    assert modes == dict.fromkeys(found, 0o600)
    with sqlite3.connect(path) as check:  # a real database, not an empty placeholder
        assert check.execute("SELECT x FROM t").fetchall() == [(1,)]


async def test_mail_the_sink_stores_is_the_owners_only(tmp_path: Path) -> None:
    mail_dir = tmp_path / "data" / "mail"
    async with MailSink(mail_dir, port=0) as sink:
        await aiosmtplib.send(
            b"Subject: x\r\n\r\nnoi dung\r\n",
            sender="accord@accord.example",
            recipients=["snv@snv.example"],
            hostname="127.0.0.1",
            port=sink.port,
        )
    [stored] = mail_dir.iterdir()
    assert mode(mail_dir) == 0o700
    assert mode(stored) == 0o600


async def test_the_embedded_servers_files_are_the_owners_only(tmp_path: Path) -> None:
    port, ui_port = free_ports(2)
    data_dir = tmp_path / "data"
    async with DevServer(data_dir, port=port, ui_port=ui_port):
        pass
    files = sorted(p for p in data_dir.rglob("*") if p.is_file())
    assert data_dir / "temporal.db" in files
    assert data_dir / "temporal-server.log" in files
    assert mode(data_dir) == 0o700
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
