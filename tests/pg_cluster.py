"""A throw-away PostgreSQL cluster for the tests: Debian's server binaries (apt-get install
postgresql, done by .ci/run), `initdb` into a temporary folder, `pg_ctl start` on 127.0.0.1
with a free port, a generated password; stopped and removed after.

PostgreSQL refuses to run as root: when the tests run as root (CI does), the cluster belongs
to the `postgres` account (created by the Debian package) and its commands run through
`runuser`.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

USER = "dagster"  # the cluster's superuser, as a DBA would give the server variant its own role


def server_bindir() -> Path | None:
    """The newest Debian PostgreSQL server's bin folder (or initdb on the PATH)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.password = secrets.token_urlsafe(18)
        self.root = Path(tempfile.mkdtemp(prefix="caf-pg-"))  # not under pytest's root-only folder
        self.data_dir = self.root / "data"
        self.port = _free_port()
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_owner = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        result = subprocess.run(self.as_owner + list(args), capture_output=True, text=True, timeout=120)
        if result.returncode:
            raise RuntimeError(f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr[-2000:]}")

    def start(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n", encoding="utf-8")
        if self.as_owner:
            owner = pwd.getpwnam("postgres")
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        os.chmod(pwfile, 0o600)
        try:
            self._run(str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", USER, f"--pwfile={pwfile}",
                      "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
        finally:
            pwfile.unlink()
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c max_connections=60")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.root / "server.log"),
                  "-w", "-t", "60", "-o", options, "start")

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def connect(self, database: str = "postgres"):
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, password=self.password, dbname=database)
        con.autocommit = True
        return con

    def sql(self, query: str, params=None, database: str = "postgres") -> list[tuple]:
        con = self.connect(database)
        try:
            with con.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else []
        finally:
            con.close()

    def create_database(self) -> str:
        name = f"caf_{uuid.uuid4().hex[:12]}"
        self.sql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def environment(self, database: str) -> dict[str, str]:
        """The DAGSTER_PG_* variables deploy/dagster.postgres.yaml reads."""
        return {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_DB": database,
                "DAGSTER_PG_USER": USER, "DAGSTER_PG_PASSWORD": self.password}

    def count_everywhere(self, database: str, text: str) -> dict[str, int]:
        """Rows of every column of every table of `database` whose text holds `text` (raw or
        JSON-escaped): {table.column: count}, the non-zero ones only."""
        import json

        forms = {text, json.dumps(text)[1:-1]}
        out = {}
        columns = self.sql(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'",
            database=database)
        for table, column in columns:
            for form in forms:
                (n,) = self.sql(f'SELECT count(*) FROM "{table}" WHERE strpos("{column}"::text, %s) > 0',
                                (form,), database=database)[0]
                if n:
                    out[f"{table}.{column}"] = out.get(f"{table}.{column}", 0) + n
        return out
