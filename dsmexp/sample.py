"""`python -m dsmexp.sample run=RUN_DIR [sampler=NAME] [score=model|exact] [KEY=VALUE ...]`
(`dsmexp-sample`): samples from a trained run's score, or from the exact score of its dataset, and
measures the samples against a fresh sample of the data. Writes RUN_DIR/samples/<sampler>-<score>-<hash>/
samples.npz and quality.json; never touches the run's own files. Several runs: run=DIR1,DIR2 samples each.
"""

from __future__ import annotations

import sys

from dsmexp.errors import DsmexpError

USAGE = __doc__


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        from dsmexp.config.store import CONF_DIR, options_of

        print(USAGE)
        print(f"samplers: {', '.join(options_of('sampler'))} (their settings: {CONF_DIR}/sampler/; the "
              f"command's: {CONF_DIR}/sample.yaml)")
        return 0
    try:
        from dsmexp.config.compose import compose_sample
        from dsmexp.errors import ConfigError

        runs = [a.split("=", 1)[1] for a in argv if a.startswith("run=")]
        rest = [a for a in argv if not a.startswith("run=")]
        if not runs or not runs[-1]:
            raise ConfigError("run: missing; name the run directory to sample from, e.g. "
                              "run=outputs/2026-12-02/10-00-00")
        cfgs = [compose_sample(run, rest) for run in runs[-1].split(",")]
        from dsmexp.train.sampling import sample_run, target_problem

        for cfg in cfgs:  # every run checked (disk included) before any sampling starts
            target_problem(cfg)
        for cfg in cfgs:
            sample_run(cfg)
    except DsmexpError as err:
        print(f"dsmexp.sample: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
