"""One Settings object from the environment (EDT_*), shared by the CLI and the server."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.cwd() / "edt-data"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDT_", extra="ignore")

    storage: str = ""  # fsspec URL of the results root; default: ./edt-data/results
    registry: str = ""  # SQLAlchemy URL; default: sqlite:///./edt-data/registry.db
    address: str = ""  # Ray cluster address; default: embedded Ray (or RAY_ADDRESS)

    # ---- the HTTP front (edt serve) ----
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Without a tokens file the server has no authentication, hence binds loopback only.
    tokens_file: str = ""
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

    # ---- the client side (edt ... --api) ----
    api_url: str = ""
    token: str = ""

    def storage_url(self) -> str:
        return self.storage or str(_default_home() / "results")

    def registry_url(self) -> str:
        return self.registry or f"sqlite:///{_default_home() / 'registry.db'}"
