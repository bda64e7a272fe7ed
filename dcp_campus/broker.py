"""A real Mosquitto broker on loopback, started and stopped by tests and scripts.

Everything lives in one work directory (a temporary or cache directory): the configuration, the
password file (``mosquitto_passwd``), the ACL (``acl.render_acl``), the persistence database
(retained messages survive a restart, as in production) and the log. ``start`` returns once the
broker accepts TCP connections on its port; ``stop`` ends it with SIGTERM (it saves its
database) and waits; ``restart`` keeps the port, so clients reconnect to the same address.

    with Broker(Path("/tmp/b"), halls=["hall1", "hall2"]) as broker:
        user, password = broker.credentials("hall1")
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from .acl import CAMPUS_USER, check_hall, render_acl

HOST: Final = "127.0.0.1"
SEARCH_PATH: Final = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")


def find_binary(name: str) -> str:
    """The path of a Mosquitto program (``/usr/sbin`` is not on every user's PATH)."""
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SEARCH_PATH))
    if found is None:
        raise FileNotFoundError(f"{name} not found: install Debian's mosquitto package")
    return found


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Broker:
    """One Mosquitto on 127.0.0.1 with a user per hall and the campus user, and their ACL."""

    def __init__(
        self,
        workdir: Path,
        halls: Iterable[str] = (),
        *,
        port: int = 0,
        passwords: Mapping[str, str] | None = None,
        campus_user: str = CAMPUS_USER,
    ) -> None:
        """Nothing runs yet. Users: ``campus_user`` and one per hall (named like the hall), with
        the given passwords or random ones (``credentials`` tells them)."""
        self.workdir = workdir
        self.halls = [check_hall(h) for h in halls]
        self.campus_user = campus_user
        self.port = port or free_port()
        given = dict(passwords or {})
        self.passwords = {
            user: given.get(user) or secrets.token_urlsafe(12)
            for user in [campus_user, *self.halls]
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """The address clients connect to."""
        return HOST

    @property
    def log_path(self) -> Path:
        """The broker's log (connections, denied publishes)."""
        return self.workdir / "mosquitto.log"

    def credentials(self, user: str) -> tuple[str, str]:
        """(user name, password) of the campus or a hall."""
        return user, self.passwords[user]

    def write_config(self) -> Path:
        """Write the password file, the ACL and the configuration; returns the config's path."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        passwd = self.workdir / "passwd"
        passwd.write_text("")
        passwd.chmod(0o600)
        tool = find_binary("mosquitto_passwd")
        for user, password in self.passwords.items():
            subprocess.run(
                [tool, "-b", str(passwd), user, password], check=True, capture_output=True
            )
        acl = self.workdir / "acl"
        acl.write_text(render_acl(self.halls, self.campus_user))
        acl.chmod(0o600)
        (self.workdir / "data").mkdir(exist_ok=True)
        lines = [
            f"listener {self.port} {HOST}",
            "allow_anonymous false",
            f"password_file {passwd}",
            f"acl_file {acl}",
            "persistence true",
            f"persistence_location {self.workdir / 'data'}/",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_type debug",  # denied publishes are logged at this level
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # as root Mosquitto would drop to its own user otherwise
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker (writing its files first) and wait until it accepts connections."""
        if self.process is not None and self.process.poll() is None:
            return
        conf = self.write_config()
        self.process = subprocess.Popen(
            [find_binary("mosquitto"), "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited at start: {err.strip()} {self.log_tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"mosquitto did not accept connections on {self.port} in {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """End the broker cleanly (SIGTERM: it saves retained messages), killing it after
        ``timeout``."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def restart(self) -> None:
        """Stop and start again on the same port (clients reconnect by themselves)."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        """The end of the broker's log."""
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> Self:
        """Start on entering a ``with`` block."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop on leaving it."""
        self.stop()
