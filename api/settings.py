"""One Settings object from the environment (EDT_*), shared by the CLI and the server."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.cwd() / "edt-data"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDT_", extra="ignore")

    storage: str = ""  # fsspec URL of the results root; default: ./edt-data/results
    registry: str = ""  # SQLAlchemy URL; default: sqlite:///./edt-data/registry.db
    address: str = ""  # Ray cluster address; default: embedded Ray (or RAY_ADDRESS)

    def storage_url(self) -> str:
        return self.storage or str(_default_home() / "results")

    def registry_url(self) -> str:
        return self.registry or f"sqlite:///{_default_home() / 'registry.db'}"
