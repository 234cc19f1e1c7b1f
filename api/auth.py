"""Bearer tokens, tenants and roles from the tokens file (EDT_TOKENS_FILE, YAML or JSON).

    tokens:
      "sha256:9f86d08...":   {tenant: acme, role: submitter}   # the file holds no secret
      "plain-dev-token":     {tenant: acme, role: viewer}
    tenants:                                                  # optional quota overrides
      acme: {max_scenarios_per_job: 100000, max_active_jobs: 5, cpu_seconds_per_day: 3600}

Every presented token is compared with every key in constant time (hmac.compare_digest), so
neither the match nor its position leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.settings import Settings


class Role(StrEnum):
    VIEWER = "viewer"
    SUBMITTER = "submitter"
    ADMIN = "admin"

    def at_least(self, other: Role) -> bool:
        order = [Role.VIEWER, Role.SUBMITTER, Role.ADMIN]
        return order.index(self) >= order.index(other)


@dataclass(frozen=True)
class Principal:
    """Who makes a request."""

    tenant: str
    role: Role
    name: str  # a printable handle for logs (never the token)

    def sees_tenant(self, tenant: str) -> bool:
        return self.role is Role.ADMIN or tenant == self.tenant


class Quotas(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_scenarios_per_job: int = Field(ge=1)
    max_active_jobs: int = Field(ge=1)
    cpu_seconds_per_day: float = Field(gt=0)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    role: Role


class _TenantOverrides(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    max_scenarios_per_job: int | None = Field(default=None, ge=1)
    max_active_jobs: int | None = Field(default=None, ge=1)
    cpu_seconds_per_day: float | None = Field(default=None, gt=0)


class _TokensFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tokens: dict[str, _Entry] = Field(min_length=1)
    tenants: dict[str, _TenantOverrides] = Field(default_factory=dict)


class TokensFileError(ValueError):
    """The tokens file is missing, unreadable or malformed (one line, names the file)."""


# Local mode (no tokens file, loopback only): one user who owns everything.
LOCAL_PRINCIPAL = Principal(tenant="default", role=Role.ADMIN, name="local")


@dataclass
class TokenBook:
    """The tokens a server accepts; empty `keys` means no authentication (local mode)."""

    keys: list[tuple[bytes, bool, Principal]] = field(default_factory=list)
    overrides: dict[str, _TenantOverrides] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def authenticate(self, token: str) -> Principal | None:
        presented = token.encode()
        digest = hashlib.sha256(presented).hexdigest().encode()
        found: Principal | None = None
        for key, hashed, principal in self.keys:
            # No early exit: the loop takes as long whichever key (if any) matches.
            if hmac.compare_digest(digest if hashed else presented, key) and found is None:
                found = principal
        return found

    def quotas(self, tenant: str, settings: Settings) -> Quotas:
        o = self.overrides.get(tenant) or _TenantOverrides()
        return Quotas(
            max_scenarios_per_job=o.max_scenarios_per_job or settings.quota_max_scenarios_per_job,
            max_active_jobs=o.max_active_jobs or settings.quota_max_active_jobs,
            cpu_seconds_per_day=o.cpu_seconds_per_day or settings.quota_cpu_seconds_per_day,
        )


def load_tokens(path: str | Path | None) -> TokenBook:
    """Read the tokens file; raises TokensFileError with one line naming the problem."""
    if not path:
        return TokenBook()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        data: Any = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
        parsed = _TokensFile.model_validate(data)
    except OSError as exc:
        raise TokensFileError(f"EDT_TOKENS_FILE {path}: {exc.strerror or exc}") from None
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, ValidationError):
            e = exc.errors()[0]
            first = f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
        raise TokensFileError(f"EDT_TOKENS_FILE {path}: {first}") from None
    keys: list[tuple[bytes, bool, Principal]] = []
    for n, (key, entry) in enumerate(parsed.tokens.items()):
        hashed = key.startswith("sha256:")
        secret = key.removeprefix("sha256:").lower() if hashed else key
        if hashed and (len(secret) != 64 or any(c not in "0123456789abcdef" for c in secret)):
            raise TokensFileError(f"EDT_TOKENS_FILE {path}: token #{n + 1}: bad sha256 digest")
        name = f"{entry.tenant}/{entry.role.value}#{n + 1}"
        keys.append((secret.encode(), hashed, Principal(entry.tenant, entry.role, name)))
    return TokenBook(keys=keys, overrides=dict(parsed.tenants))


def hash_token(token: str) -> str:
    """The key to put in the tokens file instead of the token itself."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()
