"""Bad settings refused up front in one line: unknown keys, non-finite numbers, out-of-range values."""

import pytest

from dsmexp.config import validate
from dsmexp.errors import ConfigError
from tests.conftest import make_cfg


@pytest.mark.parametrize("overrides, message", [
    (["+sigam=0.1"], "sigam: not a dsmexp setting; did you mean sigma?"),
    (["+stesp=10"], "stesp: not a dsmexp setting; did you mean steps?"),
    (["+dataset.nosie=0.1"], "dataset.nosie: not a dsmexp setting; did you mean dataset.noise?"),
    (["dataset=gaussian", "+dataset.noise=0.1"], "dataset.noise: not a dsmexp setting"),
    (["+model.hiden=[8]"], "model.hiden: not a dsmexp setting; did you mean model.hidden?"),
    (["+optimizer.momentun=0.9"],
     "optimizer.momentun: not a dsmexp setting; did you mean optimizer.momentum?"),
    (["+loss.weight=2"], "loss.weight: not a dsmexp setting"),
    (["dataset=gaussian", "dataset.mean=nan"], "dataset.mean=nan: must be a finite number"),
    (["dataset=gaussian", "dataset.mean=[0,inf]"], "dataset.mean[1]=inf: must be a finite number"),
    (["optimizer.lr=inf"], "optimizer.lr=inf: must be a finite number"),
    (["sigma=inf"], "sigma=inf: must be a finite number"),
    (["sigma=1e400"], "sigma=inf: must be a finite number"),
    (["sigma=1e-300"], "sigma=1e-300: must be 0 (ISM on clean data) or between 1e-15 and 1e+15"),
    (["dataset.noise=inf"], "dataset.noise=inf: must be a finite number"),
    (["seed=-1"], "seed=-1: must be >= 0"),
    (["grid_size=100000"], "grid_size=100000: must be between 2 and 1024"),
    (["loss=tsm", "dataset.noise=0"], "loss=tsm with dataset=half_moon noise=0: TSM needs the clean data's"),
    (["loss=tsm_mix", "sigma=0"], "sigma=0 with loss=tsm_mix: TSM-mix needs sigma > 0"),
    (["antithetic=true", "noise_samples=5"], "noise_samples=5 with antithetic=true: must be even"),
    (["antithetic=true", "experiment=multiscale"],
     "antithetic=true with schedule.kind=geometric: antithetic noise is for single-sigma runs"),
    (["loss.kappa=0.5"], "loss.kappa=0.5: only loss=tsm_mix reads it"),
    (["loss=tsm_mix", "loss.kappa=-0.1"], "loss.kappa=-0.1: must be between 0"),
    (["loss=dsm_cv", "experiment=multiscale"], "loss=dsm_cv: not available across a noise schedule"),
    (["noise.kernel=cauchy"], "noise.kernel=cauchy: must be one of gaussian, laplace, student_t"),
    (["noise.kernel=student_t", "noise.df=0"], "noise.df=0.0: must be > 0"),
    (["noise.kernel=student_t", "noise.df=-2"], "noise.df=-2.0: must be > 0"),
    (["noise.kernel=laplace", "experiment=multiscale"],
     "noise.kernel=laplace with schedule.kind=geometric: the noise-conditional runs use the Gaussian kernel"),
    (["noise.kernel=student_t", "loss=dsm_cv"], "noise.kernel=student_t with loss=dsm_cv: its target"),
    (["noise.kernel=laplace", "dataset.noise=0"],
     "dataset.noise=0: the exact reference under noise.kernel=laplace"),
    (["noise.kernel=laplace", "dataset=gaussian", "dataset.rotate=true"],
     "dataset.rotate / dataset.cov: under noise.kernel=laplace the exact reference needs a diagonal"),
    (["dataset=checkerboard", "sigma=0", "loss=ism"],
     "sigma=0 with loss=ism: dataset=checkerboard is uniform on cells, with edges where its density jumps: "
     "it breaks the paper's Assumption 1"),
    (["dataset=square", "sigma=0", "loss=fd_ssm"], "sigma=0 with loss=fd_ssm: dataset=square is uniform"),
    (["dataset=checkerboard", "loss=tsm"], "loss=tsm: TSM needs the clean data's score grad log p_data, and"),
    (["dataset=checkerboard", "noise.kernel=student_t"], "dataset=checkerboard: its exact reference"),
    (["dataset=checkerboard", "dataset.dim=3"], "dataset.dim=3: dataset=checkerboard lies in the plane"),
    (["dataset=checkerboard", "dataset.cells=1"], "dataset.cells=1: must be >= 2"),
    (["dataset=square", "dataset.size=0"], "dataset.size=0.0: must be > 0"),
    (["model.parametrization=energy", "kernel=fused"],
     "kernel=fused with model.parametrization=energy: the fused kernel computes a score MLP's terms"),
    (["model.parametrization=energy", "experiment=multiscale", "model.scale_output=true"],
     "model.scale_output=true with model.parametrization=energy"),
    (["model.parametrization=energy", "model=custom", "model.target=tests.user_modules.LinearScore"],
     "model.parametrization=energy with model=custom: the energy network is model=mlp's"),
    (["model.parametrization=energi"],
     "model.parametrization=energi: must be one of score, noise, data, energy"),
])
def test_bad_settings_are_refused_in_one_line_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(*overrides))
    assert str(err.value).startswith(message)
    assert len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize("overrides", [
    [], ["experiment=fig1"], ["experiment=paper", "+profile=smoke"], ["dataset=gaussian", "dataset.dim=3",
    "dataset.mean=[1,0,-1]"], ["sigma=1e-15", "loss=ism"], ["grid_size=1024"], ["model.hidden=[]"],
    ["loss=tsm", "dataset=gmm"], ["loss=tsm_mix", "loss.kappa=1"], ["loss=dsm_cv", "antithetic=true"],
    ["dataset=checkerboard", "sigma=1e-4", "loss=ism"], ["dataset=square", "experiment=multiscale"],
    ["model.parametrization=energy", "loss=ssm_vr"], ["model.parametrization=energy", "sigma=0", "loss=ism"],
    ["model.parametrization=energy", "experiment=multiscale", "loss=hybrid"],
])
def test_good_settings_pass(overrides):
    validate(make_cfg(*overrides))


def test_keys_added_to_the_schema_are_known_without_a_list():
    from dataclasses import dataclass

    from hydra.core.config_store import ConfigStore

    from dsmexp.config.root import Config

    @dataclass
    class WithNewKey(Config):
        sigma_schedule: str = "constant"

    cs = ConfigStore.instance()
    old = cs.repo["dsmexp_schema.yaml"]
    cs.store(name="dsmexp_schema", node=WithNewKey)
    try:
        validate(make_cfg("sigma_schedule=cosine"))
        with pytest.raises(ConfigError, match="did you mean sigma_schedule"):
            validate(make_cfg("+sigma_schedul=cosine"))
    finally:
        cs.repo["dsmexp_schema.yaml"] = old
