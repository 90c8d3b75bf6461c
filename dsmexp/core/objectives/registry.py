"""Every objective dsmexp trains, one row each: the only list of objectives (docs/architecture.md,
Adding an objective). Configs (loss=NAME), the training step, the fused kernel's eligibility, the
memory estimate, figures, reports, the dimension study and the benchmark all read these rows.

Exact objectives share one pass over the shared batch z = x + sigma * eps (step.step_terms): ISM
(Eq. 8) trains the exact-divergence gradient, DSM (Eq. 7) and DSM-S (Eq. 9) the denoising one (the same
gradient; DSM adds the constant const_dsm). Estimators of ISM (estimators.py) add their own terms (*_est)
on the same z through their term function; the variance-reduced denoising objectives (targets.py) their
own regression target (*_vr columns).

Adding an objective: conf/loss/NAME.yaml, one row below, and (for an estimator) its term function or
(for a denoising variant) its target function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dsmexp.core.objectives.estimators import fd_ssm_terms, ssm_terms, ssm_vr_terms
from dsmexp.core.objectives.targets import denoising_target, mixed_target, target_score

ISM_COLOUR, DSM_COLOUR = "#1f77b4", "#ff7f0e"  # fixed across every figure: ISM blue, DSM orange
# the gradients a step can compute: exact ISM, DSM (= DSM-S), an estimator's, a denoising variant's
GRADIENTS = ("ism", "dsm", "est", "vr")


@dataclass(frozen=True)
class Objective:
    """One objective: what it trains, which columns hold its value, what it needs, how it is drawn.

    trains: the gradient it trains (GRADIENTS); loss_column: the metrics.csv column of its value;
    needs_noise: it has no meaning at sigma = 0 (DSM's target is -eps/sigma); fused_ok: the fused C++
    kernel computes it; terms: an estimator's term function (kernel, z, v, fd_eps) -> EstimatorChunk,
    None for the exact objectives; points_per_projection: network evaluations per point and projection
    (the estimators' sub-chunking); keys: the settings it alone reads; multiscale: it trains a
    noise-conditional model across a schedule too (levels.multiscale_terms), multiscale_only: only there;
    target: a denoising variant's regression target (targets.py), control: it subtracts the control
    variate <s(x), eps> / sigma at the clean point, clean_score: it needs grad log p_data at the data.
    """

    name: str
    label: str
    trains: str
    loss_column: str
    needs_noise: bool = False
    fused_ok: bool = False
    terms: Callable | None = None
    points_per_projection: int = 1
    keys: tuple[str, ...] = ()
    colour: str = "k"
    marker: str = "o"
    long_label: str = ""
    reported: tuple[str, ...] = ()  # what a run's progress and last lines show, the trained value first
    multiscale: bool = False
    multiscale_only: bool = False
    target: Callable | None = None
    control: bool = False
    clean_score: bool = False

    @property
    def estimator(self) -> bool:
        """A stochastic estimator of ISM: it draws projections and logs the *_est columns."""
        return self.terms is not None

    @property
    def grad_norm_column(self) -> str:
        return f"grad_norm_{self.trains}"

    @property
    def fit_column(self) -> str:
        """The column of its fitting term (the term Prop. 2 compares)."""
        return {"ism": "fit_ism", "dsm": "fit_dsm", "est": "fit_est", "vr": "fit_vr"}[self.trains]

    @property
    def title(self) -> str:
        """The label where objectives of both kinds are compared (the exact trace named as such)."""
        return self.long_label or self.label


_SLICED_KEYS = ("projections", "projection")
_EST_REPORTED = ("loss_est", "fit_est", "fit_ism")
_VR_REPORTED = ("loss_vr", "fit_vr", "fit_ism", "grad_var")
OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("ism", "ISM", "ism", "loss_ism", fused_ok=True, colour=ISM_COLOUR, marker="o",
              long_label="exact ISM", reported=("loss_ism", "fit_ism", "fit_dsm"), multiscale=True),
    # DSM's value is mostly its constant E|eps|^2 / (2 sigma^2): its lines show DSM-S, the part that moves
    Objective("dsm", "DSM", "dsm", "loss_dsm", needs_noise=True, fused_ok=True, colour=DSM_COLOUR,
              marker="x", reported=("loss_dsm_s", "fit_dsm", "fit_ism", "const_dsm"), multiscale=True),
    Objective("dsm_s", "DSM-S", "dsm", "loss_dsm_s", needs_noise=True, fused_ok=True, colour=DSM_COLOUR,
              marker="v", reported=("loss_dsm_s", "fit_dsm", "fit_ism"), multiscale=True),
    Objective("ssm", "SSM", "est", "loss_est", terms=ssm_terms, keys=_SLICED_KEYS, colour="#2ca02c",
              marker="^", reported=_EST_REPORTED),
    Objective("ssm_vr", "SSM-VR", "est", "loss_est", terms=ssm_vr_terms, keys=_SLICED_KEYS, colour="#9467bd",
              marker="s", reported=_EST_REPORTED, multiscale=True),
    Objective("fd_ssm", "FD-SSM", "est", "loss_est", terms=fd_ssm_terms, points_per_projection=2,
              keys=(*_SLICED_KEYS, "fd_eps"), colour="#8c564b", marker="D", reported=_EST_REPORTED),
    # ISM's div s below loss.switch_sigma, DSM's <s, eps>/sigma above: in the *_est columns
    Objective("hybrid", "hybrid", "est", "loss_est", needs_noise=True, keys=("loss.switch_sigma",),
              colour="#d62728", marker="P", long_label="hybrid ISM/DSM", reported=_EST_REPORTED,
              multiscale=True, multiscale_only=True),
    Objective("dsm_cv", "DSM-CV", "vr", "loss_vr", needs_noise=True, fused_ok=True, target=denoising_target,
              control=True,
              colour="#e377c2", marker="*", long_label="DSM-S with a control variate", reported=_VR_REPORTED),
    Objective("tsm", "TSM", "vr", "loss_vr", needs_noise=True, fused_ok=True, target=target_score,
              clean_score=True,
              colour="#17becf", marker="h", long_label="target score matching", reported=_VR_REPORTED),
    Objective("tsm_mix", "TSM-mix", "vr", "loss_vr", needs_noise=True, fused_ok=True, target=mixed_target,
              clean_score=True,
              keys=("loss.kappa",), colour="#bcbd22", marker="p", long_label="DSM/TSM combination",
              reported=_VR_REPORTED),
)}


def objective(name: str) -> Objective:
    """The row of `name`; KeyError naming the known objectives."""
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise KeyError(f"unknown objective {name!r}: one of {', '.join(OBJECTIVES)}") from None


def title(name: str) -> str:
    """The objective's title where exact and estimated objectives are compared (an unknown name as is)."""
    return OBJECTIVES[name].title if name in OBJECTIVES else name
