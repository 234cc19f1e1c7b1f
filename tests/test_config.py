"""Settings checked before anything is written: one line naming the setting, nothing created."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobs.config import ConfigError, check_registry_url, check_storage_url


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("notaurl", "not a database URL"),
        ("postgres://u@h/db", "postgresql+psycopg://"),
        ("mysql://u@h/db", "unsupported database 'mysql'"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite:////no/such/dir/reg.db", "does not exist"),
    ],
)
def test_bad_registry_urls_are_refused_with_one_line(url: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_registry_url(url)
    text = str(info.value)
    assert text.startswith("registry: ") and words in text and "\n" not in text
    assert not Path("/no/such").exists()


def test_a_relative_sqlite_path_becomes_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert check_registry_url("sqlite:///r.db") == f"sqlite:///{tmp_path / 'r.db'}"


def test_the_default_home_folder_may_be_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'edt-data' / 'registry.db'}"
    with pytest.raises(ConfigError):
        check_registry_url(url)
    assert check_registry_url(url, create_folder=True) == url
    assert (tmp_path / "edt-data").is_dir()
    assert os.listdir(tmp_path / "edt-data") == []  # the probe file is gone


def test_storage_under_a_file_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"^storage: .*is a file"):
        check_storage_url(str(tmp_path / "file" / "results"))
    with pytest.raises(ConfigError, match=r"^storage: .*is a file, not a folder"):
        check_storage_url(str(tmp_path / "file"))
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_storage_on_a_read_only_mount_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^storage: cannot write in /proc"):
        check_storage_url("/proc/edt-results")


def test_a_new_storage_folder_is_checked_not_created(tmp_path: Path) -> None:
    assert check_storage_url(str(tmp_path / "a" / "b")) == str(tmp_path / "a" / "b")
    assert os.listdir(tmp_path) == []


def test_unsupported_and_unreachable_object_stores_are_refused(
    s3_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="unsupported protocol gs://"):
        check_storage_url("gs://bucket/x")
    with pytest.raises(ConfigError, match="names no bucket"):
        check_storage_url("s3://")
    with pytest.raises(ConfigError, match=r"^storage: cannot write to s3://no-such-bucket"):
        check_storage_url("s3://no-such-bucket/x")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ConfigError, match=r"^storage: cannot write to s3://"):
        check_storage_url("s3://bucket/x")
