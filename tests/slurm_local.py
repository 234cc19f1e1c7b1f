"""A single-node Slurm on this machine for tests: munged, slurmctld and slurmd from Debian's
packages (slurm-wlm, munge), configured in a temporary folder on loopback and free ports,
started and stopped by pid. Commands run with `SLURM_CONF` pointing at that configuration."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from cluster.reaper import descendants
from tests.support import free_port

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "scancel", "scontrol")
NODE = "edtnode"


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]



class LocalSlurm:
    def __init__(self, root: Path, cpus: int = 2) -> None:
        self.root = root
        self.conf = root / "slurm.conf"
        self.socket = root / "munge" / "munge.socket"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.cpus = cpus

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf), **(extra or {})}

    def _configure(self) -> None:
        r = self.root
        for d in ("munge", "state", "spool"):
            (r / d).mkdir(parents=True, exist_ok=True)
        (r / "munge").chmod(0o755)
        key = r / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        host = socket.gethostname()
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=edttest",
                    f"SlurmctldHost={host}(127.0.0.1)",
                    f"SlurmctldPort={free_port()}",
                    f"SlurmdPort={free_port()}",
                    "AuthType=auth/munge",
                    f"AuthInfo=socket={self.socket}",
                    "CredType=cred/munge",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    f"StateSaveLocation={r / 'state'}",
                    f"SlurmdSpoolDir={r / 'spool'}",
                    f"SlurmctldPidFile={r / 'slurmctld.pid'}",
                    f"SlurmdPidFile={r / 'slurmd.pid'}",
                    f"SlurmctldLogFile={r / 'slurmctld.log'}",
                    f"SlurmdLogFile={r / 'slurmd.log'}",
                    # No cgroups here: processes tracked by parentage, no task binding.
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_CPU",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "MpiDefault=none",
                    "ReturnToService=2",
                    "KillWait=30",
                    f"NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname={host} "
                    f"CPUs={self.cpus} State=UNKNOWN",
                    f"PartitionName=edt Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )

    def _daemon(self, *cmd: str) -> None:
        log = (self.root / f"{Path(cmd[0]).name}.out").open("wb")
        self.procs.append(
            subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True
            )
        )

    def start(self) -> None:
        self._configure()
        r = self.root
        self._daemon(
            "munged", "--foreground", "--force", f"--key-file={r / 'munge.key'}",
            f"--socket={self.socket}", f"--pid-file={r / 'munge' / 'pid'}",
            f"--log-file={r / 'munge' / 'log'}", f"--seed-file={r / 'munge' / 'seed'}",
        )  # fmt: skip
        self._wait(lambda: self.socket.exists(), "munged")
        self._daemon("slurmctld", "-D", "-f", str(self.conf))
        self._daemon("slurmd", "-D", "-f", str(self.conf), "-N", NODE)
        self._wait(self._node_idle, "the Slurm node to be idle")

    def _node_idle(self) -> bool:
        out = subprocess.run(
            ["sinfo", "-h", "-n", NODE, "-o", "%t"], capture_output=True, text=True, env=self.env()
        )
        return out.returncode == 0 and out.stdout.strip() == "idle"

    def _wait(self, ok: object, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not ok():  # type: ignore[operator]
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[0]} exited: {self.logs()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready: {self.logs()}")
            time.sleep(0.2)  # polling interval

    def logs(self) -> str:
        return "\n".join(
            f"--- {f.name}\n{f.read_text(errors='replace')[-2000:]}"
            for f in sorted(self.root.glob("*.out")) + sorted(self.root.glob("*.log"))
        )

    def sbatch(self, *args: str, env: dict[str, str], cwd: Path) -> str:
        out = subprocess.run(
            ["sbatch", "--parsable", *args], capture_output=True, text=True, env=env, cwd=cwd
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        return out.stdout.strip().split(";")[0]

    def job(self, slurm_id: str) -> dict[str, str]:
        out = subprocess.run(
            ["scontrol", "show", "job", "-o", slurm_id],
            capture_output=True, text=True, env=self.env(),
        )  # fmt: skip
        return dict(f.split("=", 1) for f in out.stdout.split() if "=" in f)

    def finished(self, slurm_id: str) -> bool:
        state = self.job(slurm_id).get("JobState", "")
        return state in {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL"}

    def scancel(self, slurm_id: str) -> None:
        subprocess.run(["scancel", slurm_id], check=True, env=self.env())

    def stop(self) -> None:
        pids: set[int] = set()
        for p in self.procs:
            pids |= {p.pid, *descendants(p.pid)}
        for p in reversed(self.procs):
            with contextlib.suppress(OSError):
                os.kill(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        for pid in pids:  # job steps left behind
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
