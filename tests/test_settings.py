"""api.Settings: the one place the EDT_* environment (and Ray's RAY_ADDRESS) is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.cli_setup import settings_from
from api.settings import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("EDT_STORAGE", "EDT_REGISTRY", "EDT_ADDRESS", "RAY_ADDRESS", "EDT_TOKENS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_live_under_edt_data_of_the_working_directory(tmp_path: Path) -> None:
    s = Settings()
    assert s.storage == str(tmp_path / "edt-data" / "results")
    assert s.registry == f"sqlite:///{tmp_path / 'edt-data' / 'registry.db'}"
    assert s.address is None and s.tokens_file is None
    assert s.registry_is_default


def test_storage_and_registry_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDT_STORAGE", "s3://bucket/edt")
    monkeypatch.setenv("EDT_REGISTRY", "postgresql+psycopg://u@db/edt")
    s = Settings()
    assert (s.storage, s.registry) == ("s3://bucket/edt", "postgresql+psycopg://u@db/edt")
    assert not s.registry_is_default  # a chosen registry's folder is never created


def test_ray_address_is_used_and_edt_address_wins_over_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6380")
    assert Settings().address == "10.0.0.1:6380"
    monkeypatch.setenv("EDT_ADDRESS", "10.0.0.2:6380")
    assert Settings().address == "10.0.0.2:6380"


def test_an_empty_address_means_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "")
    monkeypatch.setenv("EDT_TOKENS_FILE", "")
    s = Settings()
    assert s.address is None and s.tokens_file is None


def test_command_line_options_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDT_STORAGE", "/from/env")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6380")
    s = settings_from("/from/option", "sqlite:///x.db", "10.0.0.3:6380")
    assert (s.storage, s.registry, s.address) == ("/from/option", "sqlite:///x.db", "10.0.0.3:6380")
    assert not s.registry_is_default
    kept = settings_from(None, None, None)
    assert (kept.storage, kept.address) == ("/from/env", "10.0.0.1:6380")
