"""A real PostgreSQL server for one hall's Home Assistant recorder, started and stopped by us.

Home Assistant's recorder writes to SQLite in its own process by default; a hall can point it at
PostgreSQL instead (``recorder: db_url: postgresql://...``). ``scripts/develop --recorder
postgresql``, the benchmark and the tests need such a server without a system service: this
module runs Debian's PostgreSQL binaries (installed into the project environment by
``scripts/setup``) on a data directory of the hall's own, as a child process.

* The hall's directory holds ``data/`` (initdb'd once), ``server.log`` and ``credentials.json``
  (generated passwords of the superuser and of the recorder's role, mode 0600).
* The server listens on 127.0.0.1 only (no Unix socket), on the given port or a free one; the
  port is kept across a restart of the same object, so Home Assistant's URL stays valid.
* PostgreSQL refuses to run as root: when we are root (the project's chroot), it runs as the
  ``postgres`` user, which must be able to reach the hall's directory.
* Starting is idempotent (a second start on the same data directory finds it initialised, the
  database and role there); a ``postmaster.pid`` left by a killed server is removed when no
  PostgreSQL runs on it any more; one that still runs is reported, not touched.
* The server runs in a process group of its own (a terminal's Ctrl-C does not reach it) and is
  told by the kernel to stop if its parent dies; ``stop`` is a fast shutdown (clients are
  disconnected, a checkpoint is written).

Every failure is a ``PostgresError`` whose message says in one line what went wrong.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

SUPERUSER = "postgres"
DATABASE = "homeassistant"
ROLE = "homeassistant"
PR_SET_PDEATHSIG = 1
LOG_KEEP_BYTES = 10_000_000
"""``server.log`` past this size is moved to ``server.log.1`` at the next start."""


class PostgresError(RuntimeError):
    """Starting or stopping the server failed; the message is one line saying why."""


def cache_dir() -> Path:
    """The project's cache (``DCP_CACHE``, as ``scripts/lib.sh`` sets it)."""
    if env := os.environ.get("DCP_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "datacenter-power"


def hall_dir(name: str) -> Path:
    """Where hall ``name``'s server keeps its data: ``<cache>/postgresql/<name>``."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise PostgresError(f"hall name {name!r}: use letters, digits, '.', '_' or '-'")
    return cache_dir() / "postgresql" / name


def bin_dir() -> Path:
    """The newest installed PostgreSQL's binaries (``DCP_PG_BIN`` overrides)."""
    if env := os.environ.get("DCP_PG_BIN"):
        found = [Path(env)]
    else:
        found = sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        )
    for path in reversed(found):
        if (path / "postgres").is_file() and (path / "initdb").is_file():
            return path
    raise PostgresError(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): scripts/setup "
        "installs Debian's package into the project environment (or set DCP_PG_BIN)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _pdeathsig_sigint() -> None:  # runs in the child, after the user switch, before exec
    os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        # SIGINT: PostgreSQL's fast shutdown (SIGTERM would wait for every client to leave).
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if re.search(r"\b(FATAL|ERROR|PANIC)\b", ln)]
    return (errors or lines or [""])[-1]


def _is_postgres(pid: int) -> bool:
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except FileNotFoundError:
        return False
    except PermissionError:
        return True  # alive and not ours to inspect: assume it is one
    return Path(exe).name in ("postgres", "postmaster")


class PostgresServer:
    """One hall's PostgreSQL server: ``start()``, ``url``, ``stop()`` (or ``with``)."""

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        *,
        database: str = DATABASE,
        role: str = ROLE,
    ) -> None:
        self.directory = Path(directory)
        self.data = self.directory / "data"
        self.log_path = self.directory / "server.log"
        self.port = port
        self.database = database
        self.role = role
        self.proc: subprocess.Popen[bytes] | None = None
        self._bin = bin_dir()
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._user = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise PostgresError(
                    "no 'postgres' user to run PostgreSQL as (it refuses to run as root)"
                ) from None

    # -- what clients need ------------------------------------------------------------------

    @property
    def credentials(self) -> dict[str, str]:
        return self._credentials(self.role)

    def _credentials(self, *roles: str) -> dict[str, str]:
        """Every role's password (generated once for the superuser and ``roles``)."""
        path = self.directory / "credentials.json"
        try:
            data: dict[str, str] = json.loads(path.read_text())
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as err:
            raise PostgresError(f"cannot read {path}: {err}") from None
        changed = False
        for who in (SUPERUSER, *roles):
            if who not in data:
                data[who] = secrets.token_urlsafe(24)
                changed = True
        if changed:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.chmod(0o600)
            tmp.replace(path)
        return data

    @property
    def url(self) -> str:
        """Home Assistant's ``recorder: db_url`` for this server (after ``start``)."""
        if self.port is None:
            raise PostgresError("the server has not been started (no port yet)")
        return self.url_for(self.database, self.role)

    def url_for(self, database: str, role: str) -> str:
        """The URL of ``database`` as ``role`` on this server (see ``add_database``)."""
        if self.port is None:
            raise PostgresError("the server has not been started (no port yet)")
        password = self._credentials(role)[role]
        return f"postgresql://{role}:{password}@127.0.0.1:{self.port}/{database}"

    def add_database(self, database: str, role: str) -> str:
        """Another recorder's database and role on this running server (a campus: one server,
        one database and role per hall); returns its URL. Idempotent."""
        if not self.running():
            raise PostgresError(f"cannot add database {database!r}: the server is not running")
        self._ensure_role_and_database(database, role)
        return self.url_for(database, role)

    def connect(self, *, superuser: bool = False, database: str | None = None) -> Any:
        """A psycopg2 connection (autocommit) as the recorder's role, or as the superuser."""
        import psycopg2

        who = SUPERUSER if superuser else self.role
        conn = psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=who,
            password=self.credentials[who],
            dbname=database or (SUPERUSER if superuser else self.database),
            connect_timeout=5,
        )
        conn.autocommit = True
        return conn

    def database_bytes(self) -> int:
        """The size of the recorder's database (tables, indexes, TOAST; not the WAL)."""
        with contextlib.closing(self.connect(superuser=True)) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_database_size(%s)", (self.database,))
            return int(cur.fetchone()[0])

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- start ------------------------------------------------------------------------------

    def start(self, timeout_s: float = 60.0) -> Self:
        """Initialise the data directory once, start the server, wait until it accepts
        connections and make sure the database and the recorder's role exist."""
        if self.running():
            return self
        self._check_reachable()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o755)
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        self._check_version()
        self._clear_stale_pid()
        if self.log_path.exists() and self.log_path.stat().st_size > LOG_KEEP_BYTES:
            self.log_path.replace(self.log_path.with_suffix(".log.1"))
        if self.port is None:
            self.port = free_port()
        elif _port_in_use(self.port):
            raise PostgresError(f"port {self.port} on 127.0.0.1 is in use; choose another")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(self._bin / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "unix_socket_directories=",
                    "-c",
                    "logging_collector=off",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.directory,
                env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
                **self._as_postgres(),
                preexec_fn=_pdeathsig_sigint,  # noqa: PLW1509 (fork of a small parent)
            )
        self._wait_ready(timeout_s)
        self._ensure_role_and_database(self.database, self.role)
        return self

    def _as_postgres(self) -> dict[str, Any]:
        if self._user is None:
            return {}
        return {
            "user": self._user.pw_uid,
            "group": self._user.pw_gid,
            "extra_groups": [],
        }

    def _check_reachable(self) -> None:
        """The ``postgres`` user must be able to reach the data directory (when we are root)."""
        if self._user is None:
            return
        for parent in [*reversed(self.directory.parents)]:
            if parent.exists() and not os.stat(parent).st_mode & 0o001:
                raise PostgresError(
                    f"the postgres user cannot reach {self.directory} ({parent} is not "
                    "searchable by others): choose a directory outside it (DCP_CACHE)"
                )

    def _initdb(self) -> None:
        if self.data.exists():  # an initdb that was cut short
            shutil.rmtree(self.data)
        self.data.mkdir(parents=True, mode=0o700)
        pwfile = self.directory / ".pwfile"
        pwfile.write_text(self.credentials[SUPERUSER] + "\n")
        pwfile.chmod(0o600)
        try:
            if self._user is not None:
                os.chown(self.data, self._user.pw_uid, self._user.pw_gid)
                os.chown(pwfile, self._user.pw_uid, self._user.pw_gid)
            done = subprocess.run(
                [
                    str(self._bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    SUPERUSER,
                    "--pwfile",
                    str(pwfile),
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                ],
                capture_output=True,
                text=True,
                cwd=self.directory,
                env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
                check=False,
                **self._as_postgres(),
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            shutil.rmtree(self.data, ignore_errors=True)
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise PostgresError(f"initdb in {self.data} failed: {last}")

    def _check_version(self) -> None:
        have = (self.data / "PG_VERSION").read_text().strip()
        want = self._bin.parent.name
        if want.isdigit() and have != want:
            raise PostgresError(
                f"{self.data} was made by PostgreSQL {have} and the installed one is {want}: "
                "remove the directory (the recorder's history goes with it) or pg_upgrade it"
            )

    def _clear_stale_pid(self) -> None:
        """Remove a ``postmaster.pid`` whose server is gone; refuse one that still runs."""
        pidfile = self.data / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
        except FileNotFoundError:
            return
        pid = int(lines[0]) if lines and lines[0].strip().isdigit() else 0
        if pid > 0 and _is_postgres(pid):
            port = lines[3].strip() if len(lines) > 3 else "?"
            raise PostgresError(
                f"PostgreSQL already runs on {self.data} (pid {pid}, port {port}); stop it "
                "first (another scripts/develop on the same configuration?)"
            )
        pidfile.unlink()
        # A killed postmaster's backends notice its death and exit within moments; the new
        # server refuses to start while they still hold the old shared memory.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            _is_postgres(int(p.name)) and self._runs_on_our_data(int(p.name))
            for p in Path("/proc").iterdir()
            if p.name.isdigit()
        ):
            time.sleep(0.1)

    def _runs_on_our_data(self, pid: int) -> bool:
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            return False
        return Path(cwd) == self.data

    def _wait_ready(self, timeout_s: float) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout_s
        assert self.proc is not None
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise PostgresError(
                    f"PostgreSQL exited with code {code} at start: {_last_line(self.log_path)} "
                    f"(log: {self.log_path})"
                )
            try:
                self.connect(superuser=True).close()
                return
            except psycopg2.OperationalError as err:
                if time.monotonic() > deadline:
                    self.stop()
                    first = str(err).strip().splitlines()[0] if str(err).strip() else "?"
                    raise PostgresError(
                        f"PostgreSQL did not accept connections within {timeout_s:.0f} s: "
                        f"{first} (log: {self.log_path})"
                    ) from None
            time.sleep(0.1)

    def _ensure_role_and_database(self, database: str, role: str) -> None:
        from psycopg2 import sql

        password = self._credentials(role)[role]
        with contextlib.closing(self.connect(superuser=True)) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            cur.execute(
                sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                cur.execute(
                    sql.SQL(
                        "CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0"
                    ).format(sql.Identifier(database), sql.Identifier(role))
                )

    # -- stop -------------------------------------------------------------------------------

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """Fast shutdown (clients disconnected, checkpoint written); returns the exit code.
        Nothing to do when it is not running."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGQUIT)  # immediate shutdown
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would (tests: the stale ``postmaster.pid``)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def remove(self) -> None:
        """Stop and delete the hall's directory (the recorder's database with it)."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> int:
    """``python scripts/pg_server.py NAME``: run hall NAME's server until Ctrl-C (manual use)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("name", help="the hall's name (its directory under the cache)")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    try:
        server = PostgresServer(hall_dir(args.name), args.port).start()
    except PostgresError as err:
        print(f"pg_server: {err}", file=sys.stderr)
        return 1
    print(f"PostgreSQL on 127.0.0.1:{server.port}, data {server.data}; Ctrl-C stops it")
    print(server.url, flush=True)
    try:
        while server.running():
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
