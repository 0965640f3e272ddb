"""A throwaway PostgreSQL cluster for the tests that need the real server.

It runs on loopback, on a port from `ports.free_ports`, in a temporary folder, started with the
PostgreSQL server binaries found on the machine (Debian's `postgresql-15` puts them in
/usr/lib/postgresql/15/bin), and it is reached with the `psycopg` driver
(`pip install 'psycopg[binary]'`). Without either the test is skipped, saying which is missing;
with ACCORD_REQUIRE_POSTGRES=1 (CI) it fails instead. initdb refuses root: as root the cluster
runs as the `postgres` user (through runuser).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ports import free_ports


def missing(reason: str) -> None:
    """Skip for `reason`, or fail when CI requires PostgreSQL."""
    if os.environ.get("ACCORD_REQUIRE_POSTGRES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def server_binaries() -> Path | None:
    """The folder holding initdb, pg_ctl, postgres and psql: on the PATH, else the newest
    Debian version."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.insert(0, Path(on_path).parent)
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres", "psql")):
            return folder
    return None


@dataclass(frozen=True)
class Cluster:
    bin: Path
    port: int

    def url(self, role: str, database: str = "postgres", password: str | None = None) -> str:
        login = f"{role}:{password}" if password is not None else role
        return f"postgresql+psycopg://{login}@127.0.0.1:{self.port}/{database}"

    def psql(self, role: str, database: str, *args: str) -> subprocess.CompletedProcess[str]:
        """psql as `role` on `database`, stopping at the first error."""
        return subprocess.run(
            [
                str(self.bin / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                f"postgresql://{role}@127.0.0.1:{self.port}/{database}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@contextlib.contextmanager
def throwaway_cluster(
    *, superuser: str = "postgres", password: str | None = None
) -> Iterator[Cluster]:
    """A new cluster whose superuser is `superuser`: trusted on loopback without `password`,
    else logging in with it (SCRAM). Stopped and deleted on exit."""
    if importlib.util.find_spec("psycopg") is None:
        missing("psycopg is not installed (pip install 'psycopg[binary]', the postgres extra)")
    binaries = server_binaries()
    if binaries is None:
        missing("no PostgreSQL server binaries (initdb, pg_ctl, postgres, psql) on this machine")
    assert binaries is not None
    folder = Path(tempfile.mkdtemp(prefix="accord-pg-"))  # in /tmp: reachable by `postgres`
    data = folder / "data"
    auth = ["--auth=trust"]
    if password is not None:
        pwfile = folder / "pw"
        pwfile.write_text(password + "\n", encoding="utf-8")
        auth = ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            missing("running as root without runuser: cannot start PostgreSQL as another user")
        for path in (folder, *folder.iterdir()):
            shutil.chown(path, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    [port] = free_ports(1)

    def run(*command: str) -> None:
        done = subprocess.run(
            [*as_user, *command], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{Path(command[0]).name} failed: {done.stdout}{done.stderr}")

    try:
        run(str(binaries / "initdb"), "-D", str(data), "-U", superuser, "-E", "UTF8", *auth)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
        run(
            str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"),
            "-w", "-o", options, "start",
        )  # fmt: skip
        try:
            yield Cluster(binaries, port)
        finally:
            subprocess.run(
                [*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
