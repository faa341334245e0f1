"""Settings: defaults, then the config file, then ORDERWATCH_* variables, then flags; mistakes said plainly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orderwatch.config import SettingError, load_settings


def orderwatch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orderwatch", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, check=False)


def test_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "orderwatch.yaml"
    config.write_text("partitions: 8\ntick_seconds: 2\ndatadir: state\n", encoding="utf-8")
    monkeypatch.setenv("ORDERWATCH_TICK_SECONDS", "3")
    settings = load_settings(str(config), {"partitions": 12, "tick_seconds": None})
    assert (settings.partitions, settings.tick_seconds) == (12, 3.0)
    assert settings.datadir == str(tmp_path / "state")  # relative to the file's folder


def test_an_app_id_gets_its_own_topics_wherever_it_is_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "plant-b.yaml"
    config.write_text("app_id: plant-b\n", encoding="utf-8")
    assert load_settings(str(config)).changes_topic == "plant-b-changes"
    monkeypatch.setenv("ORDERWATCH_APP_ID", "plant-c")
    assert load_settings().alerts_topic == "plant-c-alerts"
    assert load_settings(None, {"app_id": "plant-d"}).deadletter_topic == "plant-d-deadletter"
    config.write_text("app_id: plant-b\ntopic_prefix: shared\n", encoding="utf-8")
    assert load_settings(str(config), {"app_id": "plant-d"}).changes_topic == "shared-changes"  # said explicitly


def test_a_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERWATCH_PARTITIONS", "four")
    with pytest.raises(SettingError, match="ORDERWATCH_PARTITIONS='four'"):
        load_settings()
    out = orderwatch("alerts", "list", "--store", "sqlite://", env={"ORDERWATCH_PARTITIONS": "four"})
    assert out.returncode == 2
    assert out.stderr.startswith("orderwatch: ORDERWATCH_PARTITIONS='four': ") and "Traceback" not in out.stderr


def test_alerts_verbs_on_a_folder_without_a_store_say_so(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-datadir"
    out = orderwatch("alerts", "list", "--datadir", str(missing))
    assert out.returncode == 2
    assert f"no alert store at {missing / 'alerts.sqlite'}" in out.stderr and "Traceback" not in out.stderr
    assert not missing.exists()  # nothing created in the wrong place


def test_the_address_other_workers_reach_this_one_at(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(None, {"web_host": "10.1.2.3", "web_port": 7000}).advertised_url == "http://10.1.2.3:7000"
    monkeypatch.setenv("ORDERWATCH_WEB_URL", "http://worker-2.internal:6066/")
    assert load_settings().advertised_url == "http://worker-2.internal:6066"
    monkeypatch.delenv("ORDERWATCH_WEB_URL")
    # Listening on every interface names no address: the machine's own is advertised instead.
    wildcard = load_settings(None, {"web_host": "0.0.0.0"}).advertised_url
    assert wildcard.endswith(":6066") and "0.0.0.0" not in wildcard
