"""The cluster path on a real Slurm: a sweep through hydra/launcher=slurm_cpu gives the basic launcher's
runs.csv, a raising job is `failed` beside completing ones, and a job requeued twice mid-run (by the
cluster, then by submitit on the time-limit signal) resumes to the metrics of an uninterrupted run.

These run whenever `sinfo` shows an idle node (`make slurm-up` starts a one-node cluster on this machine
and `make test` then finds it); otherwise they are skipped with the reason.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dsmexp.records import artifacts, metrics_file
from dsmexp.records.identity import result_config
from tests.conftest import TINY, make_cfg, run_cli


def idle_node_missing() -> str | None:
    """Why the Slurm tests cannot run here, or None when sinfo shows an idle node."""
    hint = "`make slurm-up` starts a one-node cluster"
    if shutil.which("sinfo") is None:
        return f"no Slurm here (sinfo not found; {hint})"
    try:
        proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return f"sinfo did not answer in 20 s ({hint})"
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or "no output").splitlines()
        return f"sinfo failed: {lines[-1]} ({hint})"
    states = set(proc.stdout.split())
    return None if "idle" in states else f"no idle Slurm node (sinfo: {sorted(states)}; {hint})"


REASON = idle_node_missing()
pytestmark = [pytest.mark.slurm, pytest.mark.slow,
              pytest.mark.skipif(REASON is not None, reason=REASON or "")]

SLURM = ["hydra/launcher=slurm_cpu"]
# three jobs; loss=ism is made to raise (its metrics.csv path is a directory)
SWEEP = ["-m", "+profile=smoke", "threads=1", "loss=ism,dsm,dsm_s", "sigma=0.01"]
FAILING = "loss=ism,sigma=0.01"


def read_table(path: Path) -> list[dict]:
    with path.open() as f:
        return sorted(csv.DictReader(f), key=lambda r: r["run_dir"])


def mismatched_checkpoint(run_dir: Path) -> None:
    """A checkpoint with the failing job's settings but another network's weights: it passes every check
    made before the job starts, and the job raises once it loads the weights."""
    run_dir.mkdir(parents=True)
    other = torch.nn.Linear(2, 2)
    state = {"model": other.state_dict(), "optimizer": torch.optim.AdamW(other.parameters()).state_dict(),
             "noise": torch.Generator().get_state(), "steps_done": 0, "elapsed": 0.0,
             "config": result_config(make_cfg(*SWEEP[1:3], "loss=ism", "sigma=0.01"))}
    artifacts.save_checkpoint(run_dir / artifacts.CHECKPOINT_FILE, state)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> dict[str, tuple[int, str, list[dict]]]:
    """The same three-job sweep, one job raising, through Slurm and (meanwhile) the basic launcher:
    exit status, stderr and runs.csv of each."""
    root = tmp_path_factory.mktemp("slurm_sweeps")
    for name in ("basic", "slurm"):
        mismatched_checkpoint(root / "outputs" / name / FAILING)
    with (root / "slurm.log").open("w+") as log:
        slurm = start_cli(*SWEEP, *SLURM, "hydra.sweep.dir=outputs/slurm", cwd=root, log=log)
        basic = run_cli(*SWEEP, "hydra.sweep.dir=outputs/basic", cwd=root, check=False)
        slurm.wait(timeout=300)
        log.seek(0)
        slurm_err = log.read()
    return {"basic": (basic.returncode, basic.stderr, read_table(root / "outputs/basic/runs.csv")),
            "slurm": (slurm.returncode, slurm_err, read_table(root / "outputs/slurm/runs.csv"))}


def test_a_slurm_sweep_gives_the_runs_table_of_the_basic_launcher(sweeps):
    (*_, basic), (*_, slurm) = sweeps["basic"], sweeps["slurm"]
    assert [r["run_dir"] for r in slurm] == ["loss=dsm,sigma=0.01", "loss=dsm_s,sigma=0.01", FAILING]
    assert [r["status"] for r in basic] == ["completed", "completed", "failed"]
    for a, b in zip(basic, slurm):
        a.pop("wall_time_s"), b.pop("wall_time_s")
        b["error"] = b["error"].replace("outputs/slurm/", "outputs/basic/")  # the failing job's path
        assert a == b
    assert float(slurm[0]["final_loss"]) != float(slurm[1]["final_loss"])  # two different jobs compared


def test_a_raising_job_is_failed_in_runs_csv_and_the_others_complete(sweeps):
    returncode, stderr, rows = sweeps["slurm"]
    assert returncode == 1
    assert "1 of 3 jobs failed" in stderr and "RuntimeError" in stderr
    status = {r["run_dir"]: (r["status"], r["steps_done"], r["error"].split(":")[0]) for r in rows}
    assert status == {"loss=dsm,sigma=0.01": ("completed", "30", ""),
                      "loss=dsm_s,sigma=0.01": ("completed", "30", ""),
                      FAILING: ("failed", "0", "RuntimeError")}


# How the job is interrupted, in turn: the cluster requeues it (as on preemption), then Slurm's warning
# before a time limit (the --signal=USR2 submitit asks for, sent now) makes submitit requeue it itself.
INTERRUPTIONS = (("scontrol", "requeue"), ("scancel", "--signal=USR2"))


def test_a_requeued_job_resumes_from_its_checkpoints_to_the_uninterrupted_metrics(tmp_path):
    steps = 6000
    args = [*TINY, f"steps={steps}", "checkpoint_every=100", "eval_every=50", "threads=1"]
    sweep = tmp_path / "outputs" / "requeue"
    log = (tmp_path / "sweep.log").open("w+")
    proc = start_cli("-m", *args, *SLURM, "hydra.sweep.dir=outputs/requeue", cwd=tmp_path, log=log)
    # the uninterrupted run to compare with, on this machine's other core meanwhile
    reference = start_cli(*args, "hydra.run.dir=outputs/uninterrupted", cwd=tmp_path, log=subprocess.DEVNULL)
    job, resumed = None, [0]
    try:
        for command in INTERRUPTIONS:
            run_dir, job = wait_for(lambda: running_job(sweep, resumed[-1] + 150), proc,
                                    f"the job past step {resumed[-1] + 150}")
            subprocess.run([*command, job], check=True)
            # Slurm stops the job (SIGTERM, which submitit ignores, then SIGKILL after KillWait) and holds
            # it until its begin time; release it once it is pending.
            wait_for(lambda j=job: job_field(j, "JobState") == "PENDING" and node_free(), proc,
                     f"{job} pending again, its old instance gone from the node")
            resumed.append(artifacts.load_checkpoint(run_dir / "checkpoint.pt")["steps_done"])
            killed_at = rows(run_dir)
            assert resumed[-2] < resumed[-1] <= killed_at < steps, f"{command}: the job ran to its end"
            assert not (run_dir / "summary.json").exists()
            release(job)
        assert finish(proc, job, timeout=240) == 0, log_tail(log) + cluster_state(job, sweep)
        assert job_field(job, "Restarts") == "2"
        assert reference.wait(timeout=240) == 0
    finally:
        for p in (proc, reference):
            if p.poll() is None:
                p.kill()
        if job is not None and proc.returncode != 0:
            subprocess.run(["scancel", job], check=False)
        log.close()

    job_log = "".join(p.read_text() for p in sorted((sweep / ".submitit" / job).glob("*_log.*")))
    assert job_log.count("Loading pickle") == 3 and job_log.count("DUE TO JOB REQUEUE") >= 2
    assert "Caught signal SIGUSR2" in job_log and f"Requeued job {job}" in job_log
    for step in resumed[1:]:
        assert f"from step {step}" in job_log
    (row,) = read_table(sweep / "runs.csv")
    assert (row["status"], row["steps_done"]) == ("completed", str(steps))
    uninterrupted = tmp_path / "outputs" / "uninterrupted"
    got, want = (metrics_file.read_metrics(d / "metrics.csv") for d in (run_dir, uninterrupted))
    assert got["step"].tolist() == list(range(steps))
    for column in metrics_file.COLUMNS[:-1]:  # all but time_s
        np.testing.assert_array_equal(got[column], want[column], err_msg=column)


def start_cli(*args: str, cwd: Path, log) -> subprocess.Popen:
    """`python -m dsmexp ARGS` in the background, its output to log."""
    env = os.environ | {"HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "dsmexp", *args], cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def node_free() -> bool:
    """The node runs nothing and has finished cleaning up (no CPU allocated, not COMPLETING)."""
    out = subprocess.run(["scontrol", "show", "node"], capture_output=True, text=True).stdout
    return "CPUAlloc=0" in out and "COMPLETING" not in out


def release(job: str) -> None:
    """Start a requeued job now instead of at its begin time, once slurmd has finished with its old
    instance: a restart launched before slurmd revokes the old instance's credential is killed as
    "Job credential revoked", and the job ends FAILED (which submitit, without accounting, never sees).
    slurmd compares whole seconds (a credential from the second of the revocation counts as revoked),
    hence the wait after the node is free."""
    time.sleep(2.0)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)


def finish(proc: subprocess.Popen, job: str, timeout: float) -> int | None:
    """The sweep's exit status once it ends (None after timeout s, or at once when the job failed).
    Meanwhile a requeued job found held for its begin time again is released again (Slurm may set the
    hold once the old instance has finished completing, after the release the loop above made)."""
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        state = job_field(job, "JobState")
        if state in ("FAILED", "CANCELLED", "NODE_FAIL", "BOOT_FAIL", "OUT_OF_MEMORY"):
            return None
        if state == "PENDING" and job_field(job, "Reason") == "BeginTime" and node_free():
            release(job)
        time.sleep(0.5)
    return proc.poll()


def cluster_state(job: str, sweep: Path) -> str:
    """What a failure message needs to tell a stuck job from a slow one: the job and node as Slurm sees
    them and the end of the job's own logs."""
    def output(*command: str) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"{command[0]}: {err}"
    logs = "".join(p.read_text()[-1500:] for p in sorted((sweep / ".submitit" / job).glob("*_log.*")))
    return (f"\n--- scontrol show job {job} ---\n{output('scontrol', 'show', 'job', job)}"
            f"\n--- sinfo ---\n{output('sinfo', '-N', '-o', '%N %T %E')}\n--- job logs ---\n{logs}")


def log_tail(log) -> str:
    log.seek(0)
    return log.read()[-3000:]


def running_job(sweep: Path, past: int) -> tuple[Path, str] | None:
    """(run directory, Slurm job id) once the sweep's only job has logged more than `past` steps and
    saved a checkpoint beyond `past - 150`."""
    # submitit's folder per Slurm job: 12 for a single job, 12_0, 12_1, ... for an array
    jobs = [p.name for p in (sweep / ".submitit").glob("*") if re.fullmatch(r"\d+(_\d+)?", p.name)]
    metrics = list(sweep.glob("*/metrics.csv"))
    if len(jobs) != 1 or len(metrics) != 1:
        return None
    run_dir = metrics[0].parent
    if rows(run_dir) <= past:
        return None
    checkpoint = artifacts.load_checkpoint(run_dir / "checkpoint.pt")
    return (run_dir, jobs[0]) if checkpoint and checkpoint["steps_done"] > past - 150 else None


def job_field(job: str, key: str) -> str | None:
    out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    match = re.search(rf"\b{key}=(\S+)", out)
    return match.group(1) if match else None


def wait_for(check, proc: subprocess.Popen, what: str, timeout: float = 120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = check()
        if result:
            return result
        assert proc.poll() is None, f"the sweep exited ({proc.returncode}) before {what}"
        time.sleep(0.05)
    raise AssertionError(f"no {what} after {timeout:.0f} s")


def rows(run_dir: Path) -> int:
    try:
        return (run_dir / "metrics.csv").read_text().count("\n") - 1
    except FileNotFoundError:
        return 0
