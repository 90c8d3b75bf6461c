"""Hydra sweeper for dsmexp: Hydra's basic grid sweeper plus checks and bookkeeping.

- Every job's settings are validated before any job starts; a bad value stops the sweep with one line.
  Grid points that cannot exist (DSM at sigma = 0) are skipped with a warning, so that
  `-m loss=ism,dsm_s sigma=0,1e-3` runs the three meaningful jobs.
- A job whose directory another process is using (it holds the run's lock) is skipped and recorded as
  `skipped-busy`; a job whose directory holds a file dsmexp did not write or cannot read is recorded as
  `unreadable`. Either way the other jobs run.
- A failing job does not stop the others; the sweep exits non-zero once all have run (also when a job
  was unreadable).
- When the sweep ends, the sweep directory gets jobs.json (the planned grid) and runs.csv.

Hydra imports every plugin module of every environment it runs in, for every Hydra application, so this
module imports Hydra alone; the work (dsmexp, torch, pandas) is in _core.py, imported when a dsmexp sweep
starts (Hydra's plugin scan skips modules whose name starts with an underscore).
"""

from dataclasses import dataclass
from typing import Any, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.errors import CompactHydraException


@dataclass
class DsmexpSweeperConf:
    _target_: str = "hydra_plugins.dsmexp_sweeper.dsmexp_sweeper.DsmexpSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[dict[str, str]] = None


ConfigStore.instance().store(group="hydra/sweeper", name="dsmexp", node=DsmexpSweeperConf,
                             provider="dsmexp")


class SweepFailed(CompactHydraException):
    """Some jobs raised; the others ran. Reported as one line per failed job."""


class SweepRefused(CompactHydraException):
    """The sweep cannot start (a bad setting, an unusable sweep directory): one line, nothing launched."""


class DsmexpSweeper(BasicSweeper):
    """Hydra's basic sweeper with dsmexp's checks and bookkeeping (_core.sweep)."""

    def sweep(self, arguments: list[str]) -> Any:
        from dsmexp.errors import DsmexpError  # dsmexp's exceptions: no torch behind them
        from hydra_plugins.dsmexp_sweeper import _core

        try:
            return _core.sweep(self, arguments)
        except _core.JobsFailed as err:
            raise SweepFailed(str(err)) from None
        except DsmexpError as err:
            raise SweepRefused(str(err)) from None
