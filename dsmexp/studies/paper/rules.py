"""The rules that judge the paper's claims, fixed before the numbers they judge: one declarative table
(RULES) of what the paper says and where, what is measured, and every threshold with its meaning.
claims.py measures each rule on a sweep's runs; a change here is a change of verdict rule, said so in the
commit with the old and new verdicts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """A claim of the paper and the test that decides it for one seed."""

    name: str
    claim: str  # what is claimed, in our words
    paper: str  # what the paper states, and where
    measure: str  # the statistic(s) computed from one seed's runs
    thresholds: dict[str, float]  # every number the test uses
    test: str  # when one seed satisfies the rule, in words, using the threshold names


RULES: dict[str, Rule] = {rule.name: rule for rule in (
    Rule("dsm_constant",
         "DSM and DSM-S differ by the parameter-free constant E|eps|^2 / (2 sigma^2)",
         "Sec. 2.3, Eq. 7 and 9: the eliminated term C_DSM does not depend on the parameters",
         "worst = max over every logged step of all noisy runs of |loss_dsm - loss_dsm_s - const_dsm| / "
         "|loss_dsm|",
         {"max_rel": 1e-9}, "worst < max_rel (float64 rounding)"),
    Rule("fit_agreement",
         "at sigma = 0.01 the ISM and DSM fitting terms agree at every step, whichever loss trains",
         "Sec. 3, Fig. 1: the mean of the fitting term is the same for ISM and DSM in both cases and every "
         "training step",
         "fraction of steps with |fit_ism - fit_dsm| <= z x combined standard error, in the DSM-S run and "
         "in the ISM run at sigma = 0.01 (the lower of the two)",
         {"z": 3.0, "min_fraction": 0.95},
         "fraction >= min_fraction in both runs (a true equality gives about 0.997)"),
    Rule("dsm_variance_slope",
         "the variance of the DSM fitting term grows like sigma^-2 as sigma shrinks",
         "Sec. 2.3: the two fitting terms have different variances; Sec. 3, Fig. 2: for small sigma the "
         "DSM loss variance increases rapidly",
         "log-log slope against sigma (sigma > 0) of the per-point variance of <s, eps>/sigma "
         "(fit_dsm_se^2 M N), divided by the network's own E|s|^2 (2 norm), median over steps, DSM runs",
         {"target": -2.0, "tolerance": 0.2}, "|slope - target| < tolerance"),
    Rule("dsm_gradient_growth",
         "the DSM gradient norm rises sharply at sigma = 1e-3, and more at 1e-4",
         "Sec. 3, Fig. 2 bottom: for sigma = 1e-3 the DSM loss gradient and its variance increase "
         "rapidly",
         "r(s) = median over steps of the DSM-S gradient norm at sigma s over that at 1e-2",
         {"sharp": 3.0},
         "r(1e-3) >= sharp and r(1e-4) >= sharp x r(1e-3): at least sharp-fold per decade of sigma"),
    Rule("small_sigma_stalls",
         "at sigma = 1e-4 the DSM-S loss barely decreases and the score is not fitted",
         "Sec. 3: in the case of sigma = 1e-4 the loss barely decreases and the score is not fitted to "
         "the data",
         "relative drop of esm_data from first to last evaluation at 1e-4 and at 1e-2; drop of "
         "loss_dsm_s at 1e-4 (mean of first 10% of steps minus last 10%) against its std over the last 10%",
         {"fitted_fraction": 0.5, "spreads": 2.0},
         "esm_data drop at 1e-4 < fitted_fraction x the drop at 1e-2, and loss drop < spreads x std"),
    Rule("ism_robust",
         "ISM learns equally well at every small noise scale, including none",
         "Sec. 3, Fig. 2 right and Sec. 4: ISM is stable and robust against changing noise variance",
         "spread = (max - min) / min of the final esm_data of ISM at sigma in {0, 1e-4, 1e-3, 1e-2}",
         {"max_spread": 0.2}, "spread < max_spread (at least three of the four runs present)"),
    Rule("ism_noiseless",
         "ISM learns the data score without any noise, as well as DSM-S at its best noise scale",
         "Sec. 3 and 4: unlike DSM, ISM does not require noise to learn the data distribution",
         "ratio = final esm_data of ISM at sigma = 0 over the best final esm_data of DSM-S at any sigma",
         {"max_ratio": 1.1}, "ratio <= max_ratio"),
    Rule("large_sigma_bias",
         "at sigma = 1e-1 the learned score is far from the score of the data",
         "Sec. 3: when the noise scale is too large, sigma = 1e-1, the learned score is far away from the "
         "score of the data",
         "ratio = final esm_data at 1e-1 over the best final esm_data of any run at sigma <= 1e-2, for "
         "DSM-S and ISM (the smaller of the two)",
         {"far": 2.0}, "ratio >= far for both losses"),
    Rule("intermediate_sigma",
         "DSM-S needs an intermediate noise scale: its best fit is neither at the smallest nor the largest "
         "sigma",
         "Sec. 3: an intermediate noise scale is required to ensure stability and convergence of DSM",
         "the sigma among {1e-4, 1e-3, 1e-2, 1e-1} whose DSM-S run ends with the lowest esm_data",
         {"smallest": 1e-4, "largest": 1e-1},
         "that sigma is strictly between smallest and largest (all four runs present)"),
    Rule("gradient_agreement",
         "during ISM training at sigma = 0.01 the ISM and DSM gradients point the same way",
         "Sec. 3, Fig. 3 right: the gradient similarity between ISM and DSM during training with ISM",
         "median over steps of grad_cos, the cosine of the ISM and DSM-S gradients, in the ISM run at "
         "sigma = 0.01",
         {"min_cosine": 0.5}, "median > min_cosine"),
)}
