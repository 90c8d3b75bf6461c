"""`python -m dsmexp.sample run=RUN_DIR [sampler=NAME] [score=model|exact] [KEY=VALUE ...]`
(`dsmexp-sample`): samples from a trained run's score, or from the exact score of its dataset, and
measures the samples against a fresh sample of the data. Writes RUN_DIR/samples/<sampler>-<score>-<hash>/
samples.npz and quality.json; never touches the run's own files. Several runs: run=DIR1,DIR2 or run=DIR1
run=DIR2 samples each (a value that is a directory is one run, commas and all).
"""

from __future__ import annotations

import sys
from pathlib import Path

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

        values = [a.split("=", 1)[1] for a in argv if a.startswith("run=")]
        rest = [a for a in argv if not a.startswith("run=")]
        if not values or not all(values):
            raise ConfigError("run: missing; name the run directory to sample from, e.g. "
                              "run=outputs/2026-12-02/10-00-00")
        # a sweep's run directories have commas in their names (loss=dsm,seed=0): a value that is a
        # directory is one run; otherwise commas separate runs (and run= may be repeated)
        runs = [run for value in values for run in ([value] if Path(value).is_dir() else value.split(","))]
        cfgs = [compose_sample(run, rest) for run in runs]
        from dsmexp.train.sampling import prepare, sample_run

        prepared = [prepare(cfg) for cfg in cfgs]  # every run checked (disk included) before any sampling
        for job in prepared:
            sample_run(job)
    except DsmexpError as err:
        print(f"dsmexp.sample: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
