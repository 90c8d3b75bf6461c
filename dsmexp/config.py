"""Typed configuration schema (registered in Hydra's ConfigStore) and the checks run before any work."""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra.core.config_store import ConfigStore
from hydra.errors import CompactHydraException
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from dsmexp.trackers import check_logger

# absolute, so any working directory works: dsmexp/conf in an installed wheel (setup.py copies it
# there), else the repository's top-level conf/ (source checkout, editable install)
_PACKAGED_CONF = Path(__file__).resolve().parent / "conf"
CONF_DIR = str(_PACKAGED_CONF if _PACKAGED_CONF.is_dir() else _PACKAGED_CONF.parent.parent / "conf")
ACTIVATIONS = ("tanh", "silu", "softplus", "sigmoid")
LOSSES = ("ism", "dsm", "dsm_s", "ssm", "ssm_vr", "fd_ssm")
PROJECTIONS = ("rademacher", "gaussian", "sphere")
PROFILE_NAME = re.compile(r"[A-Za-z0-9._=,+\[\]-]+")  # one path component (experiment/*.yaml)
SIGMA_RANGE = (1e-15, 1e15)  # sigma^2 and 1/sigma^2 stay inside float32's range
MAX_GRID_SIZE = 1024  # score_field.npz: up to 1024^2 points (the model runs on all of them at once)


@dataclass
class HalfMoonConfig:
    name: str = "half_moon"
    n_samples: int = 1000
    noise: float = 0.05
    dim: int = 2


@dataclass
class SwissRollConfig:
    name: str = "swiss_roll"
    n_samples: int = 1000
    noise: float = 0.5
    scale: float = 0.1
    dim: int = 2


@dataclass
class GaussianConfig:
    name: str = "gaussian"
    n_samples: int = 1000
    dim: int = 2
    mean: Any = 0.0
    scale: Any = 1.0
    cov: Any = None
    condition: float = 1.0
    rotate: bool = False


@dataclass
class GMMConfig:
    name: str = "gmm"
    n_samples: int = 1000
    dim: int = 2
    components: int = 8
    means: Any = None
    spread: float = 2.0
    weights: Any = None
    scale: Any = 0.5


DATASET_SCHEMAS = {"half_moon": HalfMoonConfig, "swiss_roll": SwissRollConfig, "gaussian": GaussianConfig,
                   "gmm": GMMConfig}


@dataclass
class LossConfig:
    name: str = MISSING


@dataclass
class MLPConfig:
    name: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [16, 32])
    activation: str = "tanh"


@dataclass
class CustomModelConfig:
    """Any torch nn.Module mapping (n, d) points to (n, d) scores, built as target(**kwargs)."""

    name: str = "custom"
    target: str = MISSING
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimizerConfig:
    name: str = MISSING
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.0


@dataclass
class Config:
    dataset: Any = MISSING
    loss: LossConfig = MISSING
    model: Any = MISSING
    optimizer: OptimizerConfig = MISSING
    sigma: float = 0.01
    noise_samples: int = 100
    projections: int = 1
    projection: str = "rademacher"
    fd_eps: float = 0.1
    steps: int = 2500
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    chunk_size: int | None = None
    threads: int | None = None
    diagnostics_every: int = 1
    eval_every: int = 50
    eval_samples: int = 2000
    checkpoint_every: int = 250
    grid_size: int = 64
    compile: bool = False
    logger: str = "none"
    kernel: str = "auto"
    profile_name: str = "default"
    overwrite: bool = False


class ConfigError(CompactHydraException):
    """A bad setting, reported as one line naming the key, before any run file is written."""

    def __init__(self, message: str, sweep_skippable: bool = False) -> None:
        super().__init__(message)
        self.sweep_skippable = sweep_skippable


def register_configs() -> None:
    """Put the schema into Hydra's ConfigStore (idempotent) and the run-directory resolver into OmegaConf."""
    cs = ConfigStore.instance()
    cs.store(name="dsmexp_schema", node=Config)
    for name, schema in DATASET_SCHEMAS.items():
        cs.store(group="schema/dataset", name=name, node=schema)
    cs.store(group="schema/loss", name="loss", node=LossConfig)
    cs.store(group="schema/model", name="mlp", node=MLPConfig)
    cs.store(group="schema/model", name="custom", node=CustomModelConfig)
    cs.store(group="schema/optimizer", name="optimizer", node=OptimizerConfig)
    if not OmegaConf.has_resolver("dirname"):
        OmegaConf.register_new_resolver("dirname", run_dirname)
    if not OmegaConf.has_resolver("config_groups"):
        OmegaConf.register_new_resolver("config_groups", config_groups)


def config_groups() -> str:
    """`group: option, ...` lines for --help: the groups under conf/, without the schema entries the
    ConfigStore holds (Hydra's own listing shows those too) or Hydra's own groups."""
    lines = []
    for group in sorted(p for p in Path(CONF_DIR).iterdir() if p.is_dir() and p.name != "hydra"):
        options = sorted(f.stem for f in group.glob("*.yaml"))
        if options:
            lines.append(f"{group.name}: {', '.join(options)}")
    return "\n".join(lines)


def run_dirname(overrides: str) -> str:
    """A run directory name from Hydra's override_dirname, with numbers written by value.

    `sigma=1e-2` and `sigma=0.01` name the same directory (`sigma=0.01`); whole numbers lose a trailing
    `.0`; anything that is not a number (lists, names) is kept as typed, except that `%`, `/` and NUL
    are written %25, %2F and %00: the name is always one directory inside outputs/runs or the sweep
    directory (`model.kwargs.path=../../x` cannot name a directory elsewhere).
    """
    if not overrides:
        return "default"
    name = ",".join(_canonical_item(item) for item in _split_items(overrides))
    name = name.replace("%", "%25").replace("/", "%2F").replace("\0", "%00")
    return name.replace(".", "%2E") if name in (".", "..") else name


def _split_items(text: str) -> list[str]:
    """Split `a=1,b=[2,3],c=x` at the commas outside brackets."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "[({"
        depth -= ch in "])}"
        if ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return items


def _canonical_item(item: str) -> str:
    key, sep, value = item.partition("=")
    try:
        number = float(value)
    except ValueError:
        return item
    if not math.isfinite(number) or value.strip().lower() in ("nan", "inf", "-inf", "+inf"):
        return item
    if number.is_integer() and abs(number) < 1e15:
        return f"{key}{sep}{int(number)}"
    return f"{key}{sep}{number!r}"


def _fail(message: str, sweep_skippable: bool = False) -> None:
    raise ConfigError(message, sweep_skippable)


def _check(ok: bool, message: str) -> None:
    if not ok:
        _fail(message)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError on the first bad setting, naming the key and what is allowed."""
    _validate_keys(cfg)
    _validate_finite(cfg)
    _check(cfg.sigma >= 0, f"sigma={cfg.sigma}: must be >= 0 (0 trains ISM on clean data)")
    _check(cfg.sigma == 0 or SIGMA_RANGE[0] <= cfg.sigma <= SIGMA_RANGE[1],
           f"sigma={cfg.sigma}: must be 0 (ISM on clean data) or between {SIGMA_RANGE[0]:g} and "
           f"{SIGMA_RANGE[1]:g} (sigma^2 and 1/sigma^2 must fit in float32)")
    _check(cfg.loss.name in LOSSES, f"loss={cfg.loss.name}: must be one of {', '.join(LOSSES)}")
    if cfg.loss.name in ("dsm", "dsm_s") and cfg.sigma == 0:
        _fail(f"sigma=0 with loss={cfg.loss.name}: DSM needs sigma > 0 "
              "(its target is -eps/sigma); use loss=ism to train on clean data", sweep_skippable=True)
    _check(cfg.seed >= 0, f"seed={cfg.seed}: must be >= 0")
    _check(bool(PROFILE_NAME.fullmatch(cfg.profile_name)) and ".." not in cfg.profile_name,
           f"profile_name={cfg.profile_name}: must be a name of letters, digits and ._-=,+[] "
           "(no / and no ..): presets put it in their sweep directory's name")
    for key in ("noise_samples", "steps", "checkpoint_every", "eval_samples"):
        _check(cfg[key] >= 1, f"{key}={cfg[key]}: must be >= 1")
    _check(cfg.diagnostics_every >= 0,
           f"diagnostics_every={cfg.diagnostics_every}: must be >= 0 (0: the trained objective only)")
    _check(cfg.projections >= 1,
           f"projections={cfg.projections}: must be >= 1 (projection vectors per point)")
    _check(cfg.projection in PROJECTIONS,
           f"projection={cfg.projection}: must be one of {', '.join(PROJECTIONS)}")
    _check(cfg.fd_eps > 0, f"fd_eps={cfg.fd_eps}: must be > 0 (radius of the finite-difference step)")
    _check(cfg.eval_every >= 0, f"eval_every={cfg.eval_every}: must be >= 0 (0: last step only)")
    _check(2 <= cfg.grid_size <= MAX_GRID_SIZE,
           f"grid_size={cfg.grid_size}: must be between 2 and {MAX_GRID_SIZE}")
    _check(cfg.chunk_size is None or cfg.chunk_size >= 1,
           f"chunk_size={cfg.chunk_size}: must be >= 1 or null (automatic)")
    _check(cfg.threads is None or cfg.threads >= 1, f"threads={cfg.threads}: must be >= 1 or null")
    _check(cfg.dtype in ("float32", "float64"), f"dtype={cfg.dtype}: must be float32 or float64")
    _validate_device(cfg.device)
    problem = check_logger(cfg.logger)
    if problem:
        _fail(problem)
    _validate_optimizer(cfg.optimizer)
    _validate_dataset(cfg.dataset)
    if cfg.loss.name == "fd_ssm":
        _validate_fd_eps(cfg)
    custom_params = _validate_model(cfg.model, int(cfg.dataset.get("dim", 2)))
    from dsmexp.memory import memory_check  # the machine's memory, before anything is allocated

    memory_check(cfg, custom_params)
    from dsmexp import fused  # kernel=fused is checked (and built) here, before any work

    fused.check_config(cfg)


def _validate_keys(cfg: DictConfig) -> None:
    """Refuse keys the schema does not know (`+sigam=0.1`), with the closest known key."""
    store = ConfigStore.instance().repo
    top = OmegaConf.structured(store["dsmexp_schema.yaml"].node)
    _check_known(cfg, top, "", skip=("hydra",))
    for group, entries in store.get("schema", {}).items():
        node = cfg.get(group)
        if not isinstance(node, DictConfig):
            continue
        schema = entries.get(f"{node.get('name')}.yaml")
        if schema is None and len(entries) == 1:  # one schema for the whole group (loss, optimizer)
            schema = next(iter(entries.values()))
        if schema is not None:
            _check_known(node, OmegaConf.structured(schema.node), f"{group}.")


def _check_known(node: DictConfig, schema: DictConfig, prefix: str, skip: tuple[str, ...] = ()) -> None:
    known = [str(k) for k in schema]
    for key in node:
        if key in skip or key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"; did you mean {prefix}{close[0]}?" if close else ""
        _fail(f"{prefix}{key}: not a dsmexp setting{hint} (`python -m dsmexp --cfg job` lists them all)")


def _validate_finite(node: Any, path: str = "") -> None:
    """Every number in the config must be finite (nan and inf are config errors, not results)."""
    if isinstance(node, DictConfig):
        for key in node:
            if key != "hydra" and not OmegaConf.is_missing(node, key):  # a missing value is reported later
                _validate_finite(node[key], f"{path}{key}.")
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            _validate_finite(item, f"{path[:-1]}[{i}].")
    elif isinstance(node, float) and not math.isfinite(node):
        _fail(f"{path[:-1]}={node}: must be a finite number")


def _validate_device(device: str) -> None:
    _check(device in ("auto", "cpu", "cuda"), f"device={device}: must be auto, cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        _fail("device=cuda: no CUDA GPU is visible to torch (torch.cuda.is_available() is False); "
              "use device=cpu or device=auto")


def _validate_model(model: DictConfig, dim: int) -> int | None:
    """Check the model settings; for model=custom, the number of parameters of the module built."""
    if model.name == "custom":
        return _validate_custom_model(model, dim)
    _check(model.name == "mlp", f"model={model.name}: must be mlp or custom")
    _check(model.activation in ACTIVATIONS,
           f"model.activation={model.activation}: must be one of {', '.join(ACTIVATIONS)} "
           "(ISM differentiates the divergence, so the activation needs a second derivative)")
    hidden = list(model.hidden)
    _check(all(h >= 1 for h in hidden),
           f"model.hidden={hidden}: must be a list of positive widths ([] is a linear score model)")
    return None


def _validate_custom_model(model: DictConfig, dim: int) -> int:
    """Import, build and call the user's module once on a few points: one line for each way it fails.
    Returns its number of parameters."""
    from dsmexp.models import CustomModelError, build_custom

    _check(not OmegaConf.is_missing(model, "target"),
           "model.target: missing; model=custom needs model.target=package.module.Class")
    try:
        module = build_custom(model.target, OmegaConf.to_container(model.kwargs), dim, check=True)
    except CustomModelError as err:
        _fail(str(err))
    return sum(p.numel() for p in module.parameters())


def data_extent(ds: DictConfig, sigma: float) -> float:
    """A bound on the size of a coordinate of the noised points z: the data's largest coordinate
    magnitude (3 standard deviations for Gaussian parts) plus 3 sigma."""
    if ds.name == "half_moon":  # make_moons lies in [-1, 2] x [-0.5, 1]
        extent = 2.0 + 3 * ds.noise
    elif ds.name == "swiss_roll":  # radius t <= 4.5 pi, times scale
        extent = ds.scale * (4.5 * math.pi + 3 * ds.noise)
    elif ds.name == "gaussian":
        means = list(ds.mean) if isinstance(ds.mean, ListConfig) else [ds.mean]
        if ds.cov is not None:
            stds = [math.sqrt(row[i]) for i, row in enumerate(ds.cov)]
        else:
            stds = list(ds.scale) if isinstance(ds.scale, ListConfig) else [ds.scale]
        extent = max(abs(m) for m in means) + 3 * max(stds)
    else:
        scales = list(ds.scale) if isinstance(ds.scale, ListConfig) else [ds.scale]
        centre = 3 * ds.spread if ds.means is None else max(abs(v) for row in ds.means for v in row)
        extent = centre + 3 * max(scales)
    return extent + 3 * sigma


def fd_eps_range(cfg: DictConfig) -> tuple[float, float, float]:
    """(lowest, highest) fd_eps where fd_ssm's finite difference means something, and R.

    With R = sqrt(d) x data_extent, the typical size of |z|: below sqrt(machine eps of the dtype) x R
    the step u (|u| = fd_eps) is lost in the rounding of z +- u (and d / (2 fd_eps^2) grows without
    bound); above R the difference s(z+u) - s(z-u) spans the data instead of approximating J u.
    """
    radius = math.sqrt(int(cfg.dataset.get("dim", 2))) * data_extent(cfg.dataset, cfg.sigma)
    return math.sqrt(torch.finfo(getattr(torch, cfg.dtype)).eps) * radius, radius, radius


def _validate_fd_eps(cfg: DictConfig) -> None:
    low, high, radius = fd_eps_range(cfg)
    _check(low <= cfg.fd_eps <= high,
           f"fd_eps={cfg.fd_eps}: must be between {low:.3g} and {high:.3g} here: sqrt(eps of {cfg.dtype}) R "
           f"<= fd_eps <= R, with R = sqrt(d) x the data's extent (+3 sigma) = {radius:.3g}; smaller, z +- u "
           "rounds to z; larger, the difference is no longer local")


def _validate_optimizer(opt: DictConfig) -> None:
    _check(opt.name in ("adamw", "adam", "sgd"), f"optimizer={opt.name}: must be adamw, adam or sgd")
    _check(opt.lr > 0, f"optimizer.lr={opt.lr}: must be > 0")
    _check(opt.weight_decay >= 0, f"optimizer.weight_decay={opt.weight_decay}: must be >= 0")
    _check(len(opt.betas) == 2 and all(0 <= b < 1 for b in opt.betas),
           f"optimizer.betas={list(opt.betas)}: must be two numbers in [0, 1)")
    _check(opt.momentum >= 0, f"optimizer.momentum={opt.momentum}: must be >= 0")


def _validate_dataset(ds: DictConfig) -> None:
    name = ds.name
    _check(ds.n_samples >= 2, f"dataset.n_samples={ds.n_samples}: must be >= 2")
    _check(name in DATASET_SCHEMAS, f"dataset={name}: must be one of {', '.join(DATASET_SCHEMAS)}")
    if name in ("half_moon", "swiss_roll"):
        _check(ds.noise >= 0, f"dataset.noise={ds.noise}: must be >= 0")
        _check(ds.dim >= 2, f"dataset.dim={ds.dim}: must be >= 2 (the {name} curve lies in a 2-D plane "
               "of R^dim; 2 is the curve in its own coordinates)")
    if name == "swiss_roll":
        _check(ds.scale > 0, f"dataset.scale={ds.scale}: must be > 0")
    if name == "gaussian":
        _validate_gaussian(ds)
    if name == "gmm":
        _validate_gmm(ds)


def _validate_gaussian(ds: DictConfig) -> None:
    dim = ds.dim
    _check(dim >= 1, f"dataset.dim={dim}: must be >= 1")
    for key in ("mean", "scale"):
        value = ds[key]
        if isinstance(value, ListConfig):
            _check(len(value) == dim, f"dataset.{key}: a list must have dataset.dim={dim} entries")
        else:
            _check(isinstance(value, (int, float)), f"dataset.{key}={value}: must be a number or a list")
    scales = list(ds.scale) if isinstance(ds.scale, ListConfig) else [ds.scale]
    _check(all(s > 0 for s in scales), f"dataset.scale={ds.scale}: must be > 0")
    if ds.cov is not None:
        cov = torch.tensor(OmegaConf.to_container(ds.cov), dtype=torch.float64)
        _check(cov.shape == (dim, dim), f"dataset.cov: must be a {dim} x {dim} list of lists")
        symmetric = torch.allclose(cov, cov.T)
        _check(symmetric and bool(torch.linalg.eigvalsh(cov).min() > 0),
               "dataset.cov: must be symmetric positive definite")
    _check(ds.condition >= 1, f"dataset.condition={ds.condition}: must be >= 1 (1 keeps the variances)")
    _check(ds.cov is None or ds.condition == 1,
           f"dataset.condition={ds.condition}: applies to the diagonal from dataset.scale; "
           "leave it at 1 with an explicit dataset.cov")


def _validate_gmm(ds: DictConfig) -> None:
    dim, k = ds.dim, ds.components
    _check(dim >= 1, f"dataset.dim={dim}: must be >= 1")
    _check(k >= 1, f"dataset.components={k}: must be >= 1")
    _check(ds.spread >= 0, f"dataset.spread={ds.spread}: must be >= 0")
    if ds.means is not None:
        ok = isinstance(ds.means, ListConfig) and len(ds.means) == k and all(
            isinstance(row, ListConfig) and len(row) == dim for row in ds.means)
        _check(ok, f"dataset.means: must be null (drawn from the seed) or a list of "
               f"dataset.components={k} lists of dataset.dim={dim} numbers")
    if ds.weights is not None:
        ok = isinstance(ds.weights, ListConfig) and len(ds.weights) == k and all(w > 0 for w in ds.weights)
        _check(ok, f"dataset.weights={ds.weights}: must be null (uniform) or a list of "
               f"dataset.components={k} positive numbers")
    scales = list(ds.scale) if isinstance(ds.scale, ListConfig) else [ds.scale]
    _check(len(scales) in (1, k) and all(isinstance(s, (int, float)) and s > 0 for s in scales),
           f"dataset.scale={ds.scale}: must be a positive number or a list of dataset.components={k} of them")
