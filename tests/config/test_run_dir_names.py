"""Run and sweep directory names built from settings stay inside outputs/: a value holding `/` or `..`
names one directory there, and profile_name (part of the presets' sweep directory) must be a plain name."""

from pathlib import Path

import pytest
from torch import nn

from dsmexp.config import compose
from dsmexp.config.run_dirs import run_dirname
from tests.conftest import TINY, run_cli_in_process

ESCAPE = "../../../../escaped"


class Noted(nn.Module):
    """A linear score model with a free-text setting (model.kwargs.note), as a user's module may have."""

    def __init__(self, dim: int, note: str = "") -> None:
        super().__init__()
        self.note = note
        self.lin = nn.Linear(dim, dim)

    def forward(self, z):
        return self.lin(z)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _nested(tmp_path: Path) -> Path:
    cwd = tmp_path / "a" / "b" / "c"
    cwd.mkdir(parents=True)
    return cwd


@pytest.mark.parametrize("args", [
    [f"profile_name={ESCAPE}"],
    ["-m", "experiment=fig1", f"profile_name={ESCAPE}"],
    ["profile_name=a/b"],
    ["profile_name=.."],
])
def test_a_profile_name_that_is_a_path_is_refused_in_one_line(args, tmp_path, monkeypatch):
    cwd = _nested(tmp_path)
    code, stderr = run_cli_in_process(*args, *TINY, "kernel=torch", cwd=cwd, monkeypatch=monkeypatch)
    lines = [line for line in stderr.splitlines() if line.strip() and "HYDRA_FULL_ERROR" not in line]
    assert code == 1, stderr
    assert len(lines) == 1 and "profile_name=" in lines[0] and "no / and no .." in lines[0], stderr
    assert sorted(tmp_path.rglob("*")) == [tmp_path / "a", tmp_path / "a" / "b", cwd]  # nothing written


def test_names_a_profile_may_have_are_accepted():
    from dsmexp.config import validate
    from tests.conftest import make_cfg

    for name in ("quick", "paper_v2", "dim-1.5", "a+b"):
        validate(make_cfg(f"profile_name={name}"))


@pytest.mark.parametrize("overrides, expected", [
    (["a=../../x"], "a=..%2F..%2Fx"),
    (["a=/etc", "b=1"], "a=%2Fetc,b=1"),
    (["a=50%", "b=x%2Fy"], "a=50%25,b=x%252Fy"),  # %25 first: x/y and x%2Fy name different directories
    (["sigma=1e-2", "a=.."], "a=..,sigma=0.01"),
    (["steps=1e3", "lr=1.0", "t=true", "+model.kwargs.note=hi there"],
     "+model.kwargs.note=hi there,lr=1,steps=1000,t=true"),  # numbers by value, the rest as typed
    (["sigma=0,1e-4", "loss=ism,dsm_s", "threads=2"], "loss=ism,dsm_s,sigma=0,1e-4"),  # a sweep as typed
])
def test_run_dirname_is_one_path_component(overrides, expected):
    assert run_dirname(overrides, exclude=["threads"]) == expected
    assert "/" not in expected and expected not in (".", "..")


def test_hydra_run_and_sweep_dirs_from_a_value_with_slashes_stay_under_outputs():
    overrides = ["model=custom", f"model.target={__name__}.Noted", f"+model.kwargs.note={ESCAPE}"]
    cfg = compose(overrides, hydra_config=True)
    run_dir = Path(cfg.hydra.run.dir)
    assert run_dir.parent == Path("outputs/runs") and ".." not in run_dir.parts
    assert "note=..%2F..%2F" in run_dir.name


def test_a_run_whose_setting_holds_a_path_writes_only_inside_its_run_directory(tmp_path, monkeypatch):
    cwd = _nested(tmp_path)
    code, stderr = run_cli_in_process(
        *TINY, "kernel=torch", "eval_samples=50", "model=custom", f"model.target={__name__}.Noted",
        f"+model.kwargs.note={ESCAPE}", cwd=cwd, monkeypatch=monkeypatch)
    assert code == 0, stderr
    run_dirs = [p for p in (cwd / "outputs" / "runs").iterdir()]
    assert len(run_dirs) == 1 and (run_dirs[0] / "summary.json").is_file()
    assert all(run_dirs[0] in f.parents for f in _files(tmp_path)), _files(tmp_path)


@pytest.mark.parametrize(("overrides", "expected"), [
    ([], "default"),
    (["loss=ism", "sigma=0"], "loss=ism,sigma=0"),
    (["experiment=paper"], "experiment=paper"),
    (["experiment=paper", "+profile=quick", "loss=ism"], "experiment=paper,loss=ism,profile=quick"),
    (["+profile=smoke", "seed=3"], "profile=smoke,seed=3"),
])
def test_a_preset_is_part_of_a_single_runs_directory_name(overrides, expected):
    """`dsmexp experiment=paper` never lands in the plain run's outputs/runs/default (where it was refused
    as a run with other settings); names without a preset are what they were."""
    cfg = compose(overrides, hydra_config=True)
    assert Path(cfg.hydra.run.dir) == Path("outputs/runs") / expected
    assert cfg.hydra.sweep.subdir == run_dirname([o for o in overrides if "experiment" not in o
                                                  and "profile" not in o])
