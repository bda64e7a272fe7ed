"""The campus broker's users and ACL, enforced by a real Mosquitto (``dcp_campus``): a hall
publishes only under its own prefix and discovery node, reads only its own command topic; the
campus reads everything and writes only command topics. Retained messages survive a restart."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from custom_components.datacenter_power import campus_topics
from dcp_campus import acl
from dcp_campus.broker import Broker
from dcp_campus.client import Client


@pytest.fixture
def broker(tmp_path: Path, socket_enabled: None) -> Iterator[Broker]:
    """A broker with the campus and two halls."""
    with Broker(tmp_path / "broker", halls=["hall1", "hall2"]) as running:
        yield running


def test_the_acl_names_the_integration_topics() -> None:
    """The ACL generator and the integration agree on the topic layout."""
    topics = campus_topics.HallTopics("hall1")
    rules = acl.hall_rules("hall1")
    assert f"topic read {topics.command}" in rules
    assert f"topic write {topics.availability}" in rules
    assert f"topic write {topics.result}" in rules
    assert f"topic write {topics.state('x').rsplit('/', 1)[0]}/#" in rules
    assert f"topic write {topics.discovery('x').split('/x/')[0]}/#" in rules
    assert acl.TOPIC_ROOT == campus_topics.TOPIC_ROOT
    assert acl.CAMPUS_USER in campus_topics.RESERVED_HALLS
    with pytest.raises(ValueError, match="not a valid hall id"):
        acl.hall_rules("campus")
    with pytest.raises(ValueError, match="not a valid hall id"):
        acl.hall_rules("hall/1")


def test_passwords_are_required(broker: Broker) -> None:
    """No anonymous client, no wrong password."""
    wrong = Broker(broker.workdir, port=broker.port, passwords={"campus": "wrong"})
    with pytest.raises(TimeoutError):
        Client(wrong, "campus", connect_s=0.5)


async def test_a_hall_cannot_publish_or_read_as_another_hall(broker: Broker) -> None:
    """hall1's publishes under hall2's prefix, hall2's discovery node and its own command topic
    are dropped by the broker (and logged); hall1 does not receive hall2's commands; the
    campus cannot publish states. Allowed topics go through."""
    campus = Client(broker, "campus")
    hall1 = Client(broker, "hall1")
    try:
        campus.subscribe("#")
        hall1.subscribe("dcp/#")  # asks for everything: gets only its own command topic
        start = time.monotonic()
        hall1.publish("dcp/hall2/state/ats1", "forged")
        hall1.publish("dcp/hall2/availability", "offline")
        hall1.publish("homeassistant/device/hall2/ats1/config", "{}")
        hall1.publish("dcp/hall1/command", "self-approval")
        campus.publish("dcp/hall1/state/ats1", "forged by campus")
        campus.publish("dcp/hall2/command", json.dumps({"hall": "hall2"}))
        campus.publish("dcp/hall1/command", json.dumps({"hall": "hall1"}))
        hall1.publish("dcp/hall1/state/ats1", "mine")
        await campus.wait_for("dcp/hall1/state/ats1", lambda m: m.text == "mine", after=start)
        await hall1.wait_for("dcp/hall1/command", after=start)
        await asyncio.sleep(0.2)
        topics = {m.topic for m in campus.messages}
        assert "dcp/hall2/state/ats1" not in topics
        assert "dcp/hall2/availability" not in topics
        assert "homeassistant/device/hall2/ats1/config" not in topics
        assert [m.text for m in campus.received("dcp/hall1/state/ats1")] == ["mine"]
        assert [m.text for m in campus.received("dcp/hall1/command")] == ['{"hall": "hall1"}']
        assert {m.topic for m in hall1.messages} == {"dcp/hall1/command"}
        log = broker.log_path.read_text()  # denied by the broker, which logs it
        assert re.search(r"Denied PUBLISH from test-hall1-\d+ .*'dcp/hall2/state/ats1'", log)
    finally:
        campus.close()
        hall1.close()


async def test_retained_messages_survive_a_restart(broker: Broker) -> None:
    """What a hall left retained is there for a campus that connects after a restart."""
    hall1 = Client(broker, "hall1")
    hall1.publish("dcp/hall1/state/hall", "kept", retain=True)
    hall1.close()
    broker.restart()
    campus = Client(broker, "campus")
    try:
        campus.subscribe("dcp/hall1/state/#")
        msg = await campus.wait_for("dcp/hall1/state/hall")
        assert msg.text == "kept"
        assert msg.retain
    finally:
        campus.close()


def test_the_command_line_writes_the_users_and_acl(tmp_path: Path) -> None:
    """``python -m dcp_campus DIR --halls ...`` writes the config, passwords and ACL."""
    out = subprocess.run(
        [sys.executable, "-m", "dcp_campus", str(tmp_path), "--halls", "hall1", "hall2",
         "--password", "campus=s3cret", "--port", "18883"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    users = json.loads(out.stdout)["users"]
    assert users["campus"] == "s3cret"
    assert set(users) == {"campus", "hall1", "hall2"}
    assert (tmp_path / "acl").read_text() == acl.render_acl(["hall1", "hall2"])
    passwd = (tmp_path / "passwd").read_text()
    assert passwd.startswith("campus:")
    assert "hall2:" in passwd
    assert "s3cret" not in passwd  # hashed
    assert "listener 18883 127.0.0.1" in (tmp_path / "mosquitto.conf").read_text()
