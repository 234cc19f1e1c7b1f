"""The deployment files in cluster/ agree with each other and with the code that reads them.

KubeRay (cluster/kuberay/*.yaml) and the on-premises launcher config (cluster/onprem/) are not
started here (no Kubernetes, no SSH): what ties them together is checked instead. One image
everywhere; Service targets and probes name ports the containers open; the Ray head's port is
the one in every EDT_ADDRESS and not 6379; every environment variable a container sets is read
by EDT's code (api/settings.py and the literals its packages read), by Ray's core library or by
botocore; every Secret key referenced is in the Secret template; CPU requests match one
ChunkWorker actor per CPU; the launcher config passes Ray's own validation (`ray up`'s).
"""

from __future__ import annotations

import ast
import copy
import re
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import botocore
import pytest
import ray
import yaml
from pydantic import AliasChoices

from api.settings import Settings
from cluster import pool

ROOT = Path(__file__).resolve().parents[1]
KUBE = ROOT / "cluster" / "kuberay"
LAUNCHER = ROOT / "cluster" / "onprem" / "edt-cluster.yaml"
ENV_NAME = re.compile(r"(EDT|RAY|AWS)_[A-Z0-9_]*[A-Z0-9]")
RAY_DEFAULT_PORT = 6379


@cache
def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(KUBE.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in documents() if d["kind"] == kind]


def raycluster() -> dict[str, Any]:
    (rc,) = of_kind("RayCluster")
    return rc


def secret() -> dict[str, Any]:
    (s,) = of_kind("Secret")
    return s


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod spec) of every pod template: Ray head, Ray worker groups, Deployments."""
    spec = raycluster()["spec"]
    yield "ray head", spec["headGroupSpec"]["template"]["spec"]
    for group in spec["workerGroupSpecs"]:
        yield f"ray group {group['groupName']}", group["template"]["spec"]
    for dep in of_kind("Deployment"):
        yield f"deployment {dep['metadata']['name']}", dep["spec"]["template"]["spec"]


def containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for where, spec in pod_specs():
        for c in spec["containers"]:
            yield f"{where}/{c['name']}", c


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


@cache
def names_edt_reads() -> frozenset[str]:
    """EDT_* of the Settings fields, and every env-var-like literal of EDT's packages."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias or field]
        # A field named by aliases is read under those names only (e.g. RAY_ADDRESS).
        names |= {c for c in choices if isinstance(c, str) and ENV_NAME.fullmatch(c)}
        if alias is None:
            names.add(f"{prefix}{field}".upper())
    for package in ("api", "cluster", "jobs", "solvers", "edt_compute"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    names |= {node.value} if ENV_NAME.fullmatch(node.value) else set()
    return frozenset(names)


@cache
def ray_core_binary() -> bytes:
    # Ray's core (C++) reads RAY_AUTH_TOKEN and friends: their names are in its binary.
    (raylet,) = Path(ray.__file__).parent.glob("_raylet*.so")
    return raylet.read_bytes()


@cache
def names_botocore_reads() -> frozenset[str]:
    """The environment variables of botocore's credential and config providers (s3fs)."""
    names: set[str] = set()
    for module in ("credentials.py", "configprovider.py"):
        tree = ast.parse((Path(botocore.__file__).parent / module).read_text())
        names |= {
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
            if n.value.startswith("AWS_")
        }
    return frozenset(names)


def read_by_code(name: str) -> bool:
    if name in names_edt_reads():
        return True
    if name.startswith("RAY_"):
        return name.encode() in ray_core_binary()
    return name.startswith("AWS_") and name in names_botocore_reads()


def test_every_manifest_parses_and_names_its_kind() -> None:
    kinds = sorted(d["kind"] for d in documents())
    assert kinds == ["Deployment", "Deployment", "RayCluster", "Secret", "Service"]
    for d in documents():
        assert d["apiVersion"] and d["metadata"]["name"], d
    assert raycluster()["apiVersion"] == "ray.io/v1"


def test_one_image_for_every_container_and_the_ray_version_it_carries() -> None:
    images = {c["image"] for _, c in containers()}
    assert len(images) == 1, images
    # KubeRay starts `ray start` of the image; rayVersion must be that Ray (the one installed).
    assert raycluster()["spec"]["rayVersion"] == ray.__version__


def test_every_env_var_a_container_sets_is_read_by_the_code() -> None:
    unread = {
        (where, name) for where, c in containers() for name in env_of(c) if not read_by_code(name)
    }
    assert not unread
    # The check can fail: a name no code reads is refused.
    assert not read_by_code("EDT_REGISTRY_URL") and not read_by_code("RAY_AUTH_TOKN")


def test_edt_settings_in_the_manifests_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = secret()["stringData"]
    for where, c in containers():
        with monkeypatch.context() as env:
            for name, e in env_of(c).items():
                if name.startswith("EDT_"):
                    ref = e.get("valueFrom", {}).get("secretKeyRef")
                    env.setenv(name, stored[ref["key"]] if ref else str(e["value"]))
            s = Settings()  # pydantic refuses a bad value, naming the field
        if "deployment" in where:
            assert s.registry.startswith("postgresql+psycopg://"), where


def test_every_secret_reference_is_a_key_of_the_secret_template() -> None:
    name, keys = secret()["metadata"]["name"], set(secret()["stringData"])
    used: set[str] = set()
    for where, c in containers():
        for e in env_of(c).values():
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert (ref["name"], ref["key"]) in {(name, k) for k in keys}, (where, ref)
                used.add(ref["key"])
    for _, spec in pod_specs():
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] == name
                used |= {item["key"] for item in volume["secret"]["items"]}
    assert used == keys  # and the template holds no key nothing reads


def test_tokens_file_is_mounted_where_edt_tokens_file_points() -> None:
    (api,) = [c for w, c in containers() if "ports" in c and "deployment" in w]
    path = Path(env_of(api)["EDT_TOKENS_FILE"]["value"])
    (mount,) = api["volumeMounts"]
    assert path.parent == Path(mount["mountPath"])
    (spec,) = [s for w, s in pod_specs() if w == "deployment edt-api"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert path.name in {item["path"] for item in volume["secret"]["items"]}


def test_services_and_probes_target_ports_the_containers_open() -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind("Deployment")}
    for svc in of_kind("Service"):
        (dep,) = [
            d
            for d in deployments.values()
            if d["spec"]["template"]["metadata"]["labels"] == svc["spec"]["selector"]
        ]
        opened = {
            (p["name"], p["containerPort"])
            for c in dep["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        for port in svc["spec"]["ports"]:
            assert any(port["targetPort"] in pair for pair in opened), (svc, opened)
    for where, c in containers():
        names = {p["name"] for p in c.get("ports", [])}
        for probe in ("readinessProbe", "livenessProbe"):
            if "httpGet" in c.get(probe, {}):
                assert c[probe]["httpGet"]["port"] in names, (where, probe)
        edt_port = env_of(c).get("EDT_PORT")
        if edt_port:
            assert int(edt_port["value"]) in {p["containerPort"] for p in c["ports"]}


def test_the_ray_head_port_is_the_one_every_address_uses_and_not_6379() -> None:
    rc = raycluster()
    head = rc["spec"]["headGroupSpec"]
    port = int(head["rayStartParams"]["port"])
    assert port != RAY_DEFAULT_PORT
    (head_container,) = head["template"]["spec"]["containers"]
    gcs = {p["name"]: p["containerPort"] for p in head_container["ports"]}["gcs-server"]
    assert gcs == port
    addresses = {
        env_of(c)["EDT_ADDRESS"]["value"] for _, c in containers() if "EDT_ADDRESS" in env_of(c)
    }
    # KubeRay's head Service is `<RayCluster name>-head-svc`.
    assert addresses == {f"{rc['metadata']['name']}-head-svc:{port}"}
    for dep in of_kind("Deployment"):  # the API and the scheduler both drive Ray
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        assert "EDT_ADDRESS" in env_of(c), dep["metadata"]["name"]


def test_every_edt_and_ray_process_uses_ray_token_authentication() -> None:
    for where, c in containers():
        env = env_of(c)
        assert env["RAY_AUTH_MODE"]["value"] == "token", where
        ref = env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": secret()["metadata"]["name"], "key": "ray-auth-token"}, where


def chunk_worker_cpus(monkeypatch: pytest.MonkeyPatch) -> float:
    """The CPUs one ChunkWorker actor reserves, as cluster.pool asks Ray for them."""
    asked: dict[str, Any] = {}

    class Recorder:
        @staticmethod
        def options(**options: Any) -> Any:
            asked.update(options)
            return Recorder

        @staticmethod
        def remote(*_: Any) -> None:
            return None

    monkeypatch.setattr(pool, "RemoteChunkWorker", Recorder)
    pool.start_pool("memory://unused", 1)
    return float(asked["num_cpus"])


def cpus(quantity: str | int) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def test_every_container_requests_resources_and_cpus_match_one_worker_per_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    per_worker = chunk_worker_cpus(monkeypatch)
    assert per_worker == 1
    for where, c in containers():
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), (where, kind)
    spec = raycluster()["spec"]
    offered = 0.0
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        (c,) = group["template"]["spec"]["containers"]
        ray_cpus = float(group["rayStartParams"]["num-cpus"])
        assert ray_cpus <= cpus(c["resources"]["requests"]["cpu"])
        if "groupName" in group:
            # A worker pod's CPUs are all ChunkWorkers: Ray offers what the pod is given.
            res = c["resources"]
            assert ray_cpus == cpus(res["requests"]["cpu"]) == cpus(res["limits"]["cpu"]) >= 1
            offered += ray_cpus * group["replicas"]
        else:
            offered += ray_cpus
    for dep in of_kind("Deployment"):
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        # Its Ray node offers no CPU: no ChunkWorker runs beside the API or the scheduler.
        assert "--num-cpus=0" in " ".join(c["args"]), dep["metadata"]["name"]
        if "EDT_WORKERS" in env_of(c):
            # Chunks are sized for the cluster's actors, one per offered CPU.
            assert int(env_of(c)["EDT_WORKERS"]["value"]) * per_worker == offered


def launcher() -> dict[str, Any]:
    return dict(yaml.safe_load(LAUNCHER.read_text()))


def test_the_launcher_config_passes_rays_own_validation() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = launcher()
    assert config["provider"]["type"] == "local"
    validate_config(prepare_config(copy.deepcopy(config)))
    typo = copy.deepcopy(config)
    typo["setup_comands"] = typo.pop("setup_commands")
    with pytest.raises(Exception, match="setup_comands"):
        validate_config(prepare_config(typo))


def test_the_launcher_starts_ray_on_one_port_not_6379_with_token_auth() -> None:
    config = launcher()
    (head,) = [c for c in config["head_start_ray_commands"] if "ray start" in c]
    (worker,) = [c for c in config["worker_start_ray_commands"] if "ray start" in c]
    port = int(re.search(r"--port=(\d+)", head).group(1))  # type: ignore[union-attr]
    assert port != RAY_DEFAULT_PORT
    assert f"--address=$RAY_HEAD_IP:{port}" in worker
    for command in (head, worker):
        assert "RAY_AUTH_MODE=token ray start" in command
    assert "~/.ray/auth_token" in config["file_mounts"]


def test_the_launcher_installs_this_package_on_every_node() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    setup = launcher()["setup_commands"]  # run on head and workers alike
    (install,) = [c for c in setup if "pip install" in c]
    assert f"'{project}[postgres]'" in install
    # Ray pinned to the version this code is tested with, as the RayCluster's rayVersion.
    assert f"'ray[default]=={ray.__version__}'" in install
    token = Path(launcher()["file_mounts"]["~/.ray/auth_token"])
    # The token file next to the config is never committed.
    assert str(token) in (ROOT / ".gitignore").read_text().split()
