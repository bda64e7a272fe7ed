"""Write a campus broker's files, or run the broker: ``python -m dcp_campus DIR --halls h1 h2``.

Writes ``DIR/mosquitto.conf``, ``DIR/passwd`` (``mosquitto_passwd``) and ``DIR/acl`` for the
campus user and one user per hall, prints each user's password once (as JSON), and with
``--serve`` runs Mosquitto on 127.0.0.1 until interrupted. Passwords come from
``--password USER=SECRET`` or are made up. In production the same ``acl`` and ``passwd`` serve
any Mosquitto (for EMQX or VerneMQ, the ACL says what to configure).
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

from .broker import Broker


def main() -> None:
    """Parse the arguments, write the files, and serve when asked."""
    parser = argparse.ArgumentParser(prog="python -m dcp_campus", description=__doc__)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--halls", nargs="+", required=True, metavar="HALL")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--password", action="append", default=[], metavar="USER=SECRET")
    parser.add_argument("--serve", action="store_true", help="run the broker until interrupted")
    args = parser.parse_args()
    given = dict(item.split("=", 1) for item in args.password)
    broker = Broker(args.workdir, args.halls, port=args.port, passwords=given)
    broker.write_config()
    print(json.dumps({"host": broker.host, "port": broker.port, "users": broker.passwords}))
    if not args.serve:
        return
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with broker:
        stop.wait()


if __name__ == "__main__":
    main()
