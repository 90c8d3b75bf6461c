"""The dataset=NAME config group: one schema per dataset on a shared base, each with its own checks (pure:
values only), the extent of its data (fd_ssm's step range) and the reference computation's memory.

A new dataset: a subclass here with its fields and `check`, an entry in DATASET_SCHEMAS, its class in
dsmexp/core/datasets.py and conf/dataset/NAME.yaml (docs/architecture.md, Adding a dataset).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from omegaconf import DictConfig, ListConfig, OmegaConf


def _items(value: Any) -> list:
    return list(value) if isinstance(value, ListConfig) else [value]


@dataclass
class DatasetConfig:
    """What every dataset has: its name, the training set's size and the ambient dimension."""

    name: str = "?"
    n_samples: int = 1000
    dim: int = 2
    min_dim: ClassVar[int] = 1

    @classmethod
    def check(cls, ds: DictConfig, fail: Callable[[str], None]) -> None:
        """Call fail(line) for the first bad value of this dataset's settings."""
        if ds.n_samples < 2:
            fail(f"dataset.n_samples={ds.n_samples}: must be >= 2")
        if ds.dim < cls.min_dim:
            fail(f"dataset.dim={ds.dim}: must be >= {cls.min_dim}{cls.why_min_dim(ds)}")

    @classmethod
    def why_min_dim(cls, ds: DictConfig) -> str:
        return ""

    @classmethod
    def no_kernel_reference(cls, ds: DictConfig, kernel: str) -> str | None:
        """Why q_sigma has no exact reference under a non-Gaussian noise kernel (core/kernel_densities.py),
        or None when it has one."""
        return None

    @classmethod
    def no_clean_density(cls, ds: DictConfig) -> str | None:
        """Why the clean data have no differentiable density (ISM at sigma = 0 and TSM are refused: the
        paper's Assumption 1), or None."""
        return None

    @classmethod
    def extent(cls, ds: DictConfig) -> float:
        """A bound on the magnitude of a coordinate of the data (3 standard deviations for Gaussian parts)."""
        raise NotImplementedError

    @classmethod
    def geometry_bytes(cls, ds: DictConfig) -> tuple[str, float, dict[str, float]]:
        """(what, bytes, the dataset keys that size it) of the data's geometry and reference computation."""
        # the core modules (torch) load at the first check: --help and completion stay fast
        from dsmexp.core.densities import BLOCK

        return "the curve's basis and reference blocks", (4 * ds.dim + 4 * BLOCK) * 8, {}


@dataclass
class CurveConfig(DatasetConfig):
    """A 2-D curve blurred by N(0, noise^2 I), placed in a 2-D plane of R^dim."""

    noise: float = 0.05
    min_dim: ClassVar[int] = 2

    @classmethod
    def check(cls, ds: DictConfig, fail: Callable[[str], None]) -> None:
        super().check(ds, fail)
        if ds.noise < 0:
            fail(f"dataset.noise={ds.noise}: must be >= 0")

    @classmethod
    def no_kernel_reference(cls, ds: DictConfig, kernel: str) -> str | None:
        if ds.noise == 0:
            return (f"dataset.noise=0: the exact reference under noise.kernel={kernel} blurs the curve's "
                    "quadrature with N(0, noise^2 I); use dataset.noise > 0")
        return None

    @classmethod
    def why_min_dim(cls, ds: DictConfig) -> str:
        return f" (the {ds.name} curve lies in a 2-D plane of R^dim; 2 is the curve in its own coordinates)"


@dataclass
class HalfMoonConfig(CurveConfig):
    name: str = "half_moon"

    @classmethod
    def extent(cls, ds: DictConfig) -> float:
        return 2.0 + 3 * ds.noise  # make_moons lies in [-1, 2] x [-0.5, 1]


@dataclass
class SwissRollConfig(CurveConfig):
    name: str = "swiss_roll"
    noise: float = 0.5
    scale: float = 0.1

    @classmethod
    def check(cls, ds: DictConfig, fail: Callable[[str], None]) -> None:
        super().check(ds, fail)
        if ds.scale <= 0:
            fail(f"dataset.scale={ds.scale}: must be > 0")

    @classmethod
    def extent(cls, ds: DictConfig) -> float:
        return ds.scale * (4.5 * math.pi + 3 * ds.noise)  # radius t <= 4.5 pi, times scale


@dataclass
class GaussianConfig(DatasetConfig):
    name: str = "gaussian"
    mean: Any = 0.0
    scale: Any = 1.0
    cov: Any = None
    condition: float = 1.0
    rotate: bool = False

    @classmethod
    def check(cls, ds: DictConfig, fail: Callable[[str], None]) -> None:
        super().check(ds, fail)
        dim = ds.dim
        for key in ("mean", "scale"):
            value = ds[key]
            if isinstance(value, ListConfig):
                if len(value) != dim:
                    fail(f"dataset.{key}: a list must have dataset.dim={dim} entries")
            elif not isinstance(value, (int, float)):
                fail(f"dataset.{key}={value}: must be a number or a list")
        if not all(s > 0 for s in _items(ds.scale)):
            fail(f"dataset.scale={ds.scale}: must be > 0")
        if ds.cov is not None:
            # torch loads at the first check: --help and completion stay fast
            import torch

            cov = torch.tensor(OmegaConf.to_container(ds.cov), dtype=torch.float64)
            if cov.shape != (dim, dim):
                fail(f"dataset.cov: must be a {dim} x {dim} list of lists")
            if not (torch.allclose(cov, cov.T) and bool(torch.linalg.eigvalsh(cov).min() > 0)):
                fail("dataset.cov: must be symmetric positive definite")
        if ds.condition < 1:
            fail(f"dataset.condition={ds.condition}: must be >= 1 (1 keeps the variances)")
        if ds.cov is not None and ds.condition != 1:
            fail(f"dataset.condition={ds.condition}: applies to the diagonal from dataset.scale; leave it at "
                 "1 with an explicit dataset.cov")

    @classmethod
    def no_kernel_reference(cls, ds: DictConfig, kernel: str) -> str | None:
        diagonal = not ds.rotate and (ds.cov is None or all(
            v == 0 for i, row in enumerate(ds.cov) for j, v in enumerate(row) if i != j))
        if kernel == "laplace" and not diagonal:
            return ("dataset.rotate / dataset.cov: under noise.kernel=laplace the exact reference needs a "
                    "diagonal covariance (the product kernel does not factor in a rotated eigenbasis); "
                    "student_t covers any covariance")
        return None

    @classmethod
    def extent(cls, ds: DictConfig) -> float:
        if ds.cov is not None:
            stds = [math.sqrt(row[i]) for i, row in enumerate(ds.cov)]
        else:
            stds = _items(ds.scale)
        return max(abs(m) for m in _items(ds.mean)) + 3 * max(stds)

    @classmethod
    def geometry_bytes(cls, ds: DictConfig) -> tuple[str, float, dict[str, float]]:
        copies = 5 + (2 if ds.rotate else 0)  # cov, its Cholesky factor, cov + sigma^2 I, eye, the inverse
        return "the Gaussian's d x d covariance and its factorisations", copies * ds.dim**2 * 8, {}


@dataclass
class GMMConfig(DatasetConfig):
    name: str = "gmm"
    components: int = 8
    means: Any = None
    spread: float = 2.0
    weights: Any = None
    scale: Any = 0.5

    @classmethod
    def check(cls, ds: DictConfig, fail: Callable[[str], None]) -> None:
        super().check(ds, fail)
        dim, k = ds.dim, ds.components
        if k < 1:
            fail(f"dataset.components={k}: must be >= 1")
        if ds.spread < 0:
            fail(f"dataset.spread={ds.spread}: must be >= 0")
        if ds.means is not None:
            ok = isinstance(ds.means, ListConfig) and len(ds.means) == k and all(
                isinstance(row, ListConfig) and len(row) == dim for row in ds.means)
            if not ok:
                fail(f"dataset.means: must be null (drawn from the seed) or a list of dataset.components={k} "
                     f"lists of dataset.dim={dim} numbers")
        if ds.weights is not None:
            ok = (isinstance(ds.weights, ListConfig) and len(ds.weights) == k
                  and all(w > 0 for w in ds.weights))
            if not ok:
                fail(f"dataset.weights={ds.weights}: must be null (uniform) or a list of "
                     f"dataset.components={k} positive numbers")
        scales = _items(ds.scale)
        if not (len(scales) in (1, k) and all(isinstance(s, (int, float)) and s > 0 for s in scales)):
            fail(f"dataset.scale={ds.scale}: must be a positive number or a list of dataset.components={k} "
                 "of them")

    @classmethod
    def extent(cls, ds: DictConfig) -> float:
        centre = 3 * ds.spread if ds.means is None else max(abs(v) for row in ds.means for v in row)
        return centre + 3 * max(_items(ds.scale))

    @classmethod
    def geometry_bytes(cls, ds: DictConfig) -> tuple[str, float, dict[str, float]]:
        k, d = int(ds.components), int(ds.dim)
        # the core modules (torch) load at the first check: --help and completion stay fast
        from dsmexp.core.densities import BLOCK

        return ("the mixture's means and reference blocks", (k * d + 4 * max(BLOCK, k * d)) * 8,
                {"dataset.components": k / 8})


@dataclass
class CellsConfig(DatasetConfig):
    """Uniform on axis-aligned cells in the plane (dsmexp/core/cells.py): data with edges."""

    size: float = 4.0

    @classmethod
    def check(cls, ds: DictConfig, fail: Callable[[str], None]) -> None:
        super().check(ds, fail)
        if ds.dim != 2:
            fail(f"dataset.dim={ds.dim}: dataset={ds.name} lies in the plane; it must be 2")
        if ds.size <= 0:
            fail(f"dataset.size={ds.size}: must be > 0")

    @classmethod
    def no_kernel_reference(cls, ds: DictConfig, kernel: str) -> str | None:
        return (f"dataset={ds.name}: its exact reference (error functions, dsmexp/core/cells.py) is written "
                f"for the Gaussian kernel only, not noise.kernel={kernel}")

    @classmethod
    def no_clean_density(cls, ds: DictConfig) -> str | None:
        return (f"dataset={ds.name} is uniform on cells, with edges where its density jumps: it breaks the "
                "paper's Assumption 1 (a differentiable data density)")

    @classmethod
    def extent(cls, ds: DictConfig) -> float:
        return ds.size / 2

    @classmethod
    def geometry_bytes(cls, ds: DictConfig) -> tuple[str, float, dict[str, float]]:
        cells = int(ds.get("cells", 1)) ** 2
        return "the cells and their reference blocks", cells * 16 * 8, {}


@dataclass
class CheckerboardConfig(CellsConfig):
    name: str = "checkerboard"
    cells: int = 4

    @classmethod
    def check(cls, ds: DictConfig, fail: Callable[[str], None]) -> None:
        super().check(ds, fail)
        if ds.cells < 2:
            fail(f"dataset.cells={ds.cells}: must be >= 2 (cells per side of the board)")


@dataclass
class SquareConfig(CellsConfig):
    name: str = "square"
    size: float = 2.0


DATASET_SCHEMAS: dict[str, type[DatasetConfig]] = {
    "half_moon": HalfMoonConfig, "swiss_roll": SwissRollConfig, "gaussian": GaussianConfig, "gmm": GMMConfig,
    "checkerboard": CheckerboardConfig, "square": SquareConfig}


def data_extent(ds: DictConfig, sigma: float) -> float:
    """A bound on the size of a coordinate of the noised points z: the data's extent plus 3 sigma."""
    return DATASET_SCHEMAS[ds.name].extent(ds) + 3 * sigma
