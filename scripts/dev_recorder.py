"""Which database ``scripts/develop``'s Home Assistant records into: SQLite or PostgreSQL.

SQLite (Home Assistant's own default, a file in the configuration directory) needs nothing.
``--recorder postgresql`` starts the configuration's own PostgreSQL server (``pg_server``; its
data under the project cache, one directory per configuration directory) and points the
recorder at it through a secret, so that the password stays out of ``configuration.yaml``::

    recorder:
      db_url: !secret recorder_db_url

The block is added once; ``secrets.yaml``'s ``recorder_db_url`` then says which database each
start uses (the server's URL, or Home Assistant's default SQLite file), so switching back and
forth is one flag. Each database keeps its own history: switching does not copy it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import time
from pathlib import Path

from pg_server import PostgresServer, hall_dir

SECRET = "recorder_db_url"
RECORDER_YAML = f"recorder:\n  db_url: !secret {SECRET}\n"
SQLITE_FILE = "home-assistant_v2.db"
"""Home Assistant's default recorder database (``recorder.const.DEFAULT_DB_FILE``)."""


def server_dir(config_dir: Path) -> Path:
    """Where this configuration directory's PostgreSQL keeps its data (under the cache)."""
    tag = hashlib.sha256(str(config_dir.resolve()).encode()).hexdigest()[:8]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", config_dir.name)
    return hall_dir(f"develop-{name}-{tag}")


def server_for(config_dir: Path, port: int | None = None) -> PostgresServer:
    """The PostgreSQL server of this configuration directory."""
    return PostgresServer(server_dir(config_dir), port)


def forget(config_dir: Path) -> bool:
    """Delete the configuration's PostgreSQL data (``--fresh``: its history goes with the
    configuration's, whichever recorder this start uses); True when there was some."""
    path = server_dir(config_dir)
    if not path.exists():
        return False
    shutil.rmtree(path)
    return True


def sqlite_url(config_dir: Path) -> str:
    return f"sqlite:///{config_dir / SQLITE_FILE}"


def _has_recorder_key(text: str) -> bool:
    return re.search(r"^recorder[ \t]*:", text, re.MULTILINE) is not None


def set_recorder(config_dir: Path, db_url: str | None) -> str | None:
    """Point the recorder at ``db_url`` (None: SQLite, Home Assistant's default).

    Returns what was changed in ``configuration.yaml`` (for the log), or None. A user's own
    ``recorder:`` block is kept; with PostgreSQL it must then read its ``db_url`` from the
    secret (``SystemExit`` says so otherwise).
    """
    path = config_dir / "configuration.yaml"
    text = path.read_text()
    ours = f"!secret {SECRET}" in text
    changed = None
    if db_url is not None and not ours:
        if _has_recorder_key(text):
            raise SystemExit(
                f"develop: {path} has its own recorder: block; for --recorder postgresql give "
                f"it the line 'db_url: !secret {SECRET}'"
            )
        if text and not text.endswith("\n"):
            text += "\n"
        path.write_text(text + RECORDER_YAML)
        changed = f"added recorder: db_url: !secret {SECRET} to {path}"
        ours = True
    if ours:
        _write_secret(config_dir / "secrets.yaml", db_url or sqlite_url(config_dir))
    return changed


def _write_secret(path: Path, value: str) -> None:
    """Set ``SECRET`` in ``secrets.yaml``, keeping every other line (mode 0600: a password)."""
    line = f"{SECRET}: {json.dumps(value)}"
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(rf"^{SECRET}[ \t]*:.*$", re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: line, text, count=1)
    else:
        if text and not text.endswith("\n"):
            text += "\n"
        text += line + "\n"
    path.write_text(text)
    path.chmod(0o600)


def recorded_states(server: PostgresServer, entity_ids: list[str], timeout_s: float) -> int:
    """How many states of ``entity_ids`` the recorder has committed to PostgreSQL, waiting up
    to ``timeout_s`` for the first (the recorder commits every few seconds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.closing(server.connect()) as conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass('states') IS NOT NULL")
            count = 0
            if cur.fetchone()[0]:
                cur.execute(
                    "SELECT count(*) FROM states s JOIN states_meta m "
                    "ON s.metadata_id = m.metadata_id WHERE m.entity_id = ANY(%s)",
                    (entity_ids,),
                )
                count = int(cur.fetchone()[0])
        if count > 0 or time.monotonic() > deadline:
            return count
        time.sleep(1)
