"""Every logged metric of a fixed set of short runs, bit for bit, against numbers recorded on this code:
each loss, both kernels, d = 2 and 8, a custom network. A change meant to move code without changing
what it computes (a refactor) must keep this test passing unchanged.

Record anew only when a change is meant to alter the numbers: `DSMEXP_RECORD_BITWISE=1 pytest
tests/e2e/test_bitwise.py`, and say why in the commit. Bitwise equality holds on one kind of CPU (the
instruction set decides the fused kernel's vector width and torch's kernels), so the cases are compared
only on a CPU with the recorded instruction-set flags.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from dsmexp.core.objectives import fused_build
from dsmexp.records import metrics_file
from dsmexp.train import trainer
from tests.conftest import make_cfg

RECORD = Path(__file__).resolve().parents[1] / "data" / "bitwise_runs.json"
COMMON = ["steps=5", "noise_samples=3", "dataset.n_samples=40", "grid_size=4", "eval_every=2",
          "eval_samples=50", "threads=1", "checkpoint_every=2"]
CASES = {
    "ism_torch": ["loss=ism", "kernel=torch"],
    "ism_clean_torch": ["loss=ism", "sigma=0", "kernel=torch"],
    "dsm_torch": ["loss=dsm", "kernel=torch"],
    "dsm_s_torch": ["loss=dsm_s", "sigma=0.001", "kernel=torch"],
    "ssm_torch": ["loss=ssm", "projections=2", "kernel=torch"],
    "ssm_vr_torch": ["loss=ssm_vr", "projection=gaussian", "kernel=torch"],
    "fd_ssm_torch": ["loss=fd_ssm", "kernel=torch"],
    "ism_fused": ["loss=ism", "kernel=fused"],
    "dsm_fused": ["loss=dsm", "kernel=fused", "model.activation=silu"],
    "ism_clean_fused": ["loss=ism", "sigma=0", "kernel=fused", "diagnostics_every=2"],
    "dsm_s_dim8_torch": ["loss=dsm_s", "dataset.dim=8", "kernel=torch"],
    "ssm_vr_gmm_dim8_torch": ["loss=ssm_vr", "dataset=gmm", "dataset.dim=8", "dataset.components=3",
                              "kernel=torch"],
    "ism_dim8_fused": ["loss=ism", "dataset.dim=8", "kernel=fused"],
    "ism_three_layers_torch": ["loss=ism", "model.hidden=[8,8,8]", "kernel=torch"],
    "custom_ism": ["loss=ism", "model=custom", "model.target=tests.user_modules.ResidualMLP",
                   "+model.kwargs.width=8", "kernel=torch"],
    "custom_ssm_vr": ["loss=ssm_vr", "model=custom", "model.target=tests.user_modules.ResidualMLP",
                      "+model.kwargs.width=8", "kernel=torch"],
}


def _cpu_flags() -> str:
    return " ".join(sorted(fused_build._cpu_features().split(":")[-1].split()))


def _metrics(tmp_path: Path, name: str) -> dict[str, list[float]]:
    run_dir = tmp_path / name
    assert trainer.run(make_cfg(*COMMON, *CASES[name]), run_dir) == "completed"
    table = metrics_file.read_metrics(run_dir / metrics_file.METRICS_FILE)
    return {column: [float(v) for v in values] for column, values in table.items() if column != "time_s"}


def _fused_available() -> bool:
    try:
        fused_build.load()
        return True
    except fused_build.BuildError:
        return False


@pytest.mark.skipif(not os.environ.get("DSMEXP_RECORD_BITWISE"), reason="records the numbers on request")
def test_record(tmp_path):
    assert _fused_available(), "recording needs the fused kernel"
    cases = {name: {"overrides": CASES[name], "metrics": _metrics(tmp_path, name)} for name in CASES}
    record = {"cpu_flags": _cpu_flags(), "common": COMMON, "cases": cases}
    RECORD.write_text(json.dumps(record, indent=0) + "\n")


@pytest.mark.skipif(bool(os.environ.get("DSMEXP_RECORD_BITWISE")), reason="recording")
@pytest.mark.parametrize("name", sorted(CASES))
def test_metrics_are_bitwise_the_recorded_ones(tmp_path, name):
    record = json.loads(RECORD.read_text())
    if record["cpu_flags"] != _cpu_flags():
        pytest.skip("recorded on a CPU with other instruction-set flags")
    if "kernel=fused" in CASES[name] and not _fused_available():
        pytest.skip("the fused kernel does not build here")
    assert record["common"] == COMMON and record["cases"][name]["overrides"] == CASES[name]
    want, got = record["cases"][name]["metrics"], _metrics(tmp_path, name)
    assert set(got) == set(want)
    for column, values in want.items():
        same = [a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(got[column], values)]
        assert len(got[column]) == len(values) and all(same), f"{column}: {got[column]} != {values}"
