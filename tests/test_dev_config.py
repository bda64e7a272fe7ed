"""``scripts/develop``'s configuration hosts a phone and UI automations (issue 23, item 1) and
records into SQLite or PostgreSQL (issue 25, item 1).

A fresh configuration and one written by an older version of the script (which had no
``mobile_app:`` and no ``automation: !include automations.yaml``, so the Companion app's
registration answered 404 and editor or blueprint automations never loaded) both end up with
them, without touching what a user wrote, and a second start changes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from homeassistant.util.yaml import Secrets, load_yaml_dict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import dev_recorder
import dev_stack

OLD_CONFIG = (
    "# Written by scripts/develop (once; your changes are kept).\n"
    "api:\nconfig:\nonboarding:\nrepairs:\ndiagnostics:\n"
    "frontend:\nhistory:\nlogbook:\nenergy:\n"
    "logger:\n  default: warning\n"
    "  logs:\n    custom_components.datacenter_power: debug\n"
)
"""What the previous version of ``write_config`` wrote."""


def _loaded(config_dir: Path) -> dict[str, object]:
    return dict(load_yaml_dict(str(config_dir / "configuration.yaml"), Secrets(config_dir)))


@pytest.mark.parametrize("headless", [False, True])
def test_fresh_config_hosts_a_phone_and_ui_automations(tmp_path: Path, headless: bool) -> None:
    dev_stack.write_config(tmp_path, headless=headless)
    config = _loaded(tmp_path)
    assert "mobile_app" in config
    assert config["automation"] == []  # automations.yaml, created empty
    assert "script" in config
    assert "scene" in config
    assert (tmp_path / "automations.yaml").read_text() == "[]\n"


def test_an_older_config_gains_them_once_keeping_user_edits(tmp_path: Path) -> None:
    path = tmp_path / "configuration.yaml"
    path.write_text(OLD_CONFIG + "input_boolean:\n  on_call:\n    name: On call\n")
    (tmp_path / "automations.yaml").write_text("- alias: mine\n  triggers: []\n  actions: []\n")
    dev_stack.write_config(tmp_path, headless=False)
    text = path.read_text()
    assert text.startswith(OLD_CONFIG + "input_boolean:\n  on_call:\n    name: On call\n")
    config = _loaded(tmp_path)
    assert "mobile_app" in config
    assert config["automation"] == [{"alias": "mine", "triggers": [], "actions": []}]
    dev_stack.write_config(tmp_path, headless=False)  # the next start: nothing more
    assert path.read_text() == text


def test_a_users_own_blocks_are_not_duplicated(tmp_path: Path) -> None:
    path = tmp_path / "configuration.yaml"
    own = (
        "default_config:\n"
        "automation manual:\n  - alias: x\n    triggers: []\n    actions: []\n"
        "automation ui: !include automations.yaml\n"
        "script: !include_dir_named scripts\n"
    )
    path.write_text(own)
    dev_stack.write_config(tmp_path, headless=False)
    assert path.read_text() == own + "scene: !include scenes.yaml\n"


# -- the recorder's database (issue 25, item 1) -------------------------------------------------

PG_URL = "postgresql://homeassistant:pw@127.0.0.1:5999/homeassistant"


def test_postgresql_then_sqlite_then_postgresql_again(tmp_path: Path) -> None:
    """``--recorder postgresql`` adds the block once; switching only changes the secret."""
    dev_stack.write_config(tmp_path, headless=True)
    before = (tmp_path / "configuration.yaml").read_text()
    (tmp_path / "secrets.yaml").write_text("other: keep me\n")
    dev_recorder.set_recorder(tmp_path, PG_URL)
    config = _loaded(tmp_path)
    assert config["recorder"] == {"db_url": PG_URL}
    assert (tmp_path / "configuration.yaml").read_text() == before + dev_recorder.RECORDER_YAML
    assert (tmp_path / "secrets.yaml").stat().st_mode & 0o077 == 0  # it holds a password
    dev_recorder.set_recorder(tmp_path, None)  # back to SQLite: Home Assistant's default file
    assert _loaded(tmp_path)["recorder"] == {
        "db_url": f"sqlite:///{tmp_path / 'home-assistant_v2.db'}"
    }
    dev_recorder.set_recorder(tmp_path, PG_URL.replace("5999", "6001"))
    assert _loaded(tmp_path)["recorder"] == {"db_url": PG_URL.replace("5999", "6001")}
    secrets = (tmp_path / "secrets.yaml").read_text()
    assert secrets.startswith("other: keep me\n")
    assert secrets.count("recorder_db_url") == 1
    assert (tmp_path / "configuration.yaml").read_text().count("recorder:") == 1


def test_sqlite_leaves_a_config_without_the_block_alone(tmp_path: Path) -> None:
    dev_stack.write_config(tmp_path, headless=False)
    before = (tmp_path / "configuration.yaml").read_text()
    assert dev_recorder.set_recorder(tmp_path, None) is None
    assert (tmp_path / "configuration.yaml").read_text() == before
    assert not (tmp_path / "secrets.yaml").exists()
    assert "recorder" not in _loaded(tmp_path)


def test_a_users_own_recorder_block_is_not_overridden(tmp_path: Path) -> None:
    path = tmp_path / "configuration.yaml"
    path.write_text("recorder:\n  purge_keep_days: 3\n")
    with pytest.raises(SystemExit, match="own recorder: block"):
        dev_recorder.set_recorder(tmp_path, PG_URL)
    assert path.read_text() == "recorder:\n  purge_keep_days: 3\n"
    # Once it reads the secret, the user's block is used as it is.
    path.write_text("recorder:\n  purge_keep_days: 3\n  db_url: !secret recorder_db_url\n")
    assert dev_recorder.set_recorder(tmp_path, PG_URL) is None
    assert _loaded(tmp_path)["recorder"] == {"purge_keep_days": 3, "db_url": PG_URL}


def test_each_configuration_has_its_own_postgresql_data(tmp_path: Path) -> None:
    a = dev_recorder.server_dir(tmp_path / "config")
    b = dev_recorder.server_dir(tmp_path / "other" / "config")
    odd = dev_recorder.server_dir(tmp_path / "my config (2)")
    assert a != b
    assert a.parent == b.parent == odd.parent
    assert a.name.startswith("develop-config-")
    assert odd.name.startswith("develop-my_config__2_-")
    assert dev_recorder.forget(tmp_path / "never-used") is False
