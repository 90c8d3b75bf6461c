"""The benchmark script runs and reports every key (its numbers are read by people, not asserted)."""

import json
import subprocess
import sys
from pathlib import Path

from dsmexp.core.objectives.registry import OBJECTIVES

SCRIPT = Path(__file__).resolve().parents[2] / "dsmexp" / "bench.py"


def test_bench_smoke_writes_every_key(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--repeats", "2", "--no-compile",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    for key in ("device", "naive_ms", "dsmexp_ms", "torch_ms", "fused_ms", "compiled_ms", "speedup_vs_naive",
                "points_per_s", "peak_mem_mb", "default_kernel", "ms_by_threads"):
        assert key in result
    # the default step is the fused kernel wherever it builds, and the speed-up describes it
    default = "fused" if result["fused_ms"] is not None else "torch"
    assert result["default_kernel"] == default and result["dsmexp_ms"] == result[f"{default}_ms"]
    assert result["speedup_vs_naive"] == result["naive_ms"] / result["dsmexp_ms"]
    assert result["compiled_ms"] is None
    assert result["naive_ms"] > 0 and result["dsmexp_ms"] > 0 and result["points_per_s"] > 0
    assert result["max_rel_diff_vs_naive"] < 1e-4  # both variants compute the same step
    assert set(result["ms_by_M"]) == {"1", "10"} and set(result["ms_by_d"]) == {"2", "8"}
    for key in ("ms_by_loss_d", "ms_by_loss_d_3layer"):
        table = result[key]
        assert set(table) == {n for n, o in OBJECTIVES.items() if not o.multiscale_only}  # one-sigma ones
        assert all(set(row) == {"2", "8"} and min(row.values()) > 0 for row in table.values())
    assert result["speed_checks"]["d"] == 8 and result["speed_checks"]["ism_over_dsm_s"] > 0
    # the multi-scale step of every objective that trains across a schedule
    assert set(result["ms_multiscale"]) == {n for n, o in OBJECTIVES.items() if o.multiscale}
    assert min(result["ms_multiscale"].values()) > 0 and result["multiscale_config"]["levels"] == 3
    assert "speed-up vs naive" in proc.stdout
