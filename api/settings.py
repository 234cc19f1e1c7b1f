"""One Settings object from the environment (EDT_*), shared by the CLI and the server."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.cwd() / "edt-data"


def _default_storage() -> str:
    return str(_default_home() / "results")


def _default_registry() -> str:
    return f"sqlite:///{_default_home() / 'registry.db'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDT_", extra="ignore", populate_by_name=True)

    storage: str = Field(default_factory=_default_storage)  # fsspec URL of the results root
    registry: str = Field(default_factory=_default_registry)  # SQLAlchemy URL
    # Ray cluster address; None: an embedded Ray of this process. EDT_ADDRESS wins over Ray's
    # own RAY_ADDRESS, which a cluster's nodes already export.
    address: str | None = Field(
        default=None, validation_alias=AliasChoices("address", "EDT_ADDRESS", "RAY_ADDRESS")
    )

    # ---- the HTTP front (edt serve) ----
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Without a tokens file the server has no authentication, hence binds loopback only.
    tokens_file: Path | None = None
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Run the scheduler inside the server process (off when `edt scheduler` runs elsewhere).
    scheduler: bool = True
    max_running_jobs: int = Field(default=4, ge=1)
    scheduler_interval: float = Field(default=1.0, gt=0)
    # How often a job may be interrupted and still be resumed by the reconciler.
    resume_budget: int = Field(default=3, ge=0)
    workers: int | None = Field(default=None, ge=1)  # actors per job (default: one per CPU)

    # ---- per-tenant quotas (defaults; the tokens file may override them per tenant) ----
    quota_max_scenarios_per_job: int = Field(default=10_000_000, ge=1)
    quota_max_active_jobs: int = Field(default=20, ge=1)  # queued + running
    quota_cpu_seconds_per_day: float = Field(default=1_000_000.0, gt=0)

    # The client side (`--api`, `--token`) is read by the CLI's options (EDT_API_URL,
    # EDT_TOKEN): a remote command never needs the settings of a server.

    @field_validator("address", "tokens_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `export EDT_ADDRESS=` (or RAY_ADDRESS=) in a script means "none", not an address "".
        return None if value == "" else value

    @property
    def registry_is_default(self) -> bool:
        """The registry nobody chose: its folder may be created (a chosen one must exist)."""
        return "registry" not in self.model_fields_set
