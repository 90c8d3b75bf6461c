"""`python -m dsmexp.sample run=RUN_DIR [sampler=NAME] [score=model|exact] [KEY=VALUE ...]`
(`dsmexp-sample`): samples from a trained run's score, or from the exact score of its dataset, and
measures the samples against a fresh sample of the data. Writes RUN_DIR/samples/<sampler>-<score>-<hash>/
samples.npz and quality.json; never touches the run's own files. Several runs: run=DIR1,DIR2 samples each.
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import fields

from omegaconf import DictConfig

from dsmexp.errors import DsmexpError

USAGE = __doc__


def _check_keys(cfg: DictConfig) -> None:
    from dsmexp.config.sampler import SampleConfig, SamplerConfig
    from dsmexp.errors import ConfigError

    for node, schema, prefix in ((cfg, SampleConfig, ""), (cfg.sampler, SamplerConfig, "sampler.")):
        known = [f.name for f in fields(schema)]
        for key in node:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"; did you mean {prefix}{close[0]}?" if close else ""
                raise ConfigError(f"{prefix}{key}: not a setting of the sample command{hint} "
                                  f"(known: {', '.join(known)})")


def _options(group: str) -> list[str]:
    """The options of a group in registry order where it has one (samplers), else as listed."""
    from dsmexp.config.store import options_of

    if group == "sampler":
        from dsmexp.core.samplers import SAMPLERS

        return list(SAMPLERS)
    return options_of(group)


def configs(argv: list[str]) -> list[DictConfig]:
    """One checked config per run named by run=... (a comma-separated list samples each)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from dsmexp.config import compose
    from dsmexp.config.checks import fail
    from dsmexp.config.sampler import check_sample
    from dsmexp.errors import ConfigError

    runs = [a.split("=", 1)[1] for a in argv if a.startswith("run=")]
    rest = [a for a in argv if not a.startswith("run=")]
    if not runs or not runs[-1]:
        raise ConfigError("run: missing; name the run directory to sample from, e.g. "
                          "run=outputs/2026-12-02/10-00-00")
    out = []
    for run in runs[-1].split(","):
        try:
            cfg = compose([f"run={run}", *rest], config_name="sample")
        except (HydraException, OmegaConfBaseException) as err:
            missing = re.search(r"Could not find '(\w+)/([^']*)'", str(err))
            if missing:
                group, name = missing.groups()
                raise ConfigError(f"{group}={name}: must be one of {', '.join(_options(group))}") from None
            raise ConfigError(str(err).splitlines()[0]) from None
        _check_keys(cfg)
        check_sample(cfg, fail)
        out.append(cfg)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        from dsmexp.config.store import CONF_DIR, options_of

        print(f"samplers: {', '.join(options_of('sampler'))} (conf: {CONF_DIR}/sampler/)")
        return 0
    try:
        cfgs = configs(argv)  # every run's config checked before any sampling starts
        from dsmexp.train.sampling import sample_run, target_problem

        for cfg in cfgs:
            target_problem(cfg)
        for cfg in cfgs:
            sample_run(cfg)
    except DsmexpError as err:
        print(f"dsmexp.sample: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
