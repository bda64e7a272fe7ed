"""``scripts/pg_server.py`` runs a real PostgreSQL server for a hall (issue 25, item 1).

Debian's PostgreSQL, started here for real: initialised once, a second start on the same data
directory keeps what was written, a ``postmaster.pid`` left by a killed server does not stop the
next start, a server still running on the directory is reported, and every error is one line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from pg_server import PostgresError, PostgresServer, hall_dir

pytestmark = pytest.mark.usefixtures("socket_enabled")  # the server listens on loopback


@pytest.fixture
def directory() -> Iterator[Path]:
    """A hall directory the ``postgres`` user can reach (pytest's tmp_path is private to us)."""
    base = Path(tempfile.mkdtemp(prefix="dcp-pg-test-"))
    base.chmod(0o755)
    yield base / "hall"
    shutil.rmtree(base, ignore_errors=True)


def _query(server: PostgresServer, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(server.connect()) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall()) if cur.description else []


def test_start_write_stop_start_again_keeps_the_data(directory: Path) -> None:
    server = PostgresServer(directory)
    with server:
        assert server.running()
        assert server.url.startswith("postgresql://homeassistant:")
        assert server.url.endswith(f"@127.0.0.1:{server.port}/homeassistant")
        _query(server, "CREATE TABLE t (x int); INSERT INTO t VALUES (42)")
        assert server.database_bytes() > 0
        # The recorder's role owns its database and is no superuser.
        assert _query(server, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == [
            (False,)
        ]
        port = server.port
    assert not server.running()
    assert server.stop() is None  # a second stop: nothing to do
    # A new object on the same directory: no second initdb, the data is there.
    again = PostgresServer(directory, port)
    with again:
        assert _query(again, "SELECT x FROM t") == [(42,)]
        assert again.start() is again  # start while running: nothing to do
    assert (directory / "credentials.json").stat().st_mode & 0o077 == 0


def test_one_server_holds_a_database_and_role_per_hall(directory: Path) -> None:
    """A campus: one server, each hall's recorder in its own database as its own role."""
    import psycopg2

    with PostgresServer(directory) as server:
        url = server.add_database("hall_b", "hall_b")
        assert url.endswith(f"@127.0.0.1:{server.port}/hall_b")
        assert server.add_database("hall_b", "hall_b") == url  # idempotent
        with contextlib.closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
            cur.execute("SELECT current_user, current_database()")
            assert cur.fetchone() == ("hall_b", "hall_b")
    with pytest.raises(PostgresError, match="not running"):
        server.add_database("hall_c", "hall_c")


def test_a_stale_pid_file_from_a_killed_server_is_handled(directory: Path) -> None:
    server = PostgresServer(directory).start()
    _query(server, "CREATE TABLE t (x int); INSERT INTO t VALUES (7)")
    server.kill()  # SIGKILL, as a crash: postmaster.pid stays behind
    assert (directory / "data" / "postmaster.pid").exists()
    try:
        server.start()
        assert _query(server, "SELECT x FROM t") == [(7,)]  # crash recovery replayed the WAL
    finally:
        server.stop()


def test_a_server_still_running_on_the_directory_is_reported(directory: Path) -> None:
    first = PostgresServer(directory).start()
    try:
        second = PostgresServer(directory)
        with pytest.raises(PostgresError, match="already runs on") as err:
            second.start()
        assert "\n" not in str(err.value)
        assert first.running()  # untouched
    finally:
        first.stop()


def test_a_port_in_use_is_reported_in_one_line(directory: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PostgresError, match=f"port {port} on 127.0.0.1 is in use") as err:
            PostgresServer(directory, port).start()
    assert "\n" not in str(err.value)


def test_a_data_directory_of_another_major_version_is_refused(directory: Path) -> None:
    server = PostgresServer(directory).start()
    server.stop()
    version = directory / "data" / "PG_VERSION"
    version.write_text("9\n")
    with pytest.raises(PostgresError, match="made by PostgreSQL 9") as err:
        server.start()
    assert "\n" not in str(err.value)


def test_hall_names_stay_inside_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCP_CACHE", "/cache")
    assert hall_dir("hall-a") == Path("/cache/postgresql/hall-a")
    with pytest.raises(PostgresError, match="hall name"):
        hall_dir("../elsewhere")


def test_an_unreachable_directory_is_reported(tmp_path: Path) -> None:
    """pytest's own tmp_path is private to us: as root, PostgreSQL's user could not reach it
    (as another user, PostgreSQL runs as that user and can)."""
    server = PostgresServer(tmp_path / "hall")
    if os.geteuid() == 0:
        with pytest.raises(PostgresError, match="cannot reach"):
            server.start()
    else:
        with server:
            assert server.running()
