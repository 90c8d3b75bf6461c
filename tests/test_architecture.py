"""The package's layering (docs/architecture.md, Layers), checked as `make lint` checks it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))")


def _lint_imports(config: Path, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    """import-linter on a contracts file, in a fresh interpreter (grimp imports nothing it analyses)."""
    return subprocess.run([sys.executable, "-c", LINT, str(config)], cwd=cwd, capture_output=True, text=True,
                          timeout=240, env=env)


def test_the_import_contracts_hold():
    out = _lint_imports(ROOT / "pyproject.toml")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_an_upward_import_hidden_in_a_function_breaks_the_contract(tmp_path):
    """The contract sees imports inside functions too: a core module reaching up to the config layer in
    a function body (to dodge a cycle) fails it."""
    package = tmp_path / "dsmexp"
    for layer in ("core", "config"):
        (package / layer).mkdir(parents=True)
        (package / layer / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "config" / "schema.py").write_text("from dsmexp.core import maths\n")
    (package / "core" / "maths.py").write_text("def f():\n    from dsmexp.config import schema\n")
    config = tmp_path / "contracts.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["dsmexp"]\n\n'
                      '[[tool.importlinter.contracts]]\nname = "layers"\ntype = "layers"\n'
                      'layers = ["dsmexp.config", "dsmexp.core"]\n\n'
                      '[[tool.importlinter.contracts]]\nname = "no cycles"\ntype = "acyclic_siblings"\n'
                      'ancestors = ["dsmexp"]\n')
    out = _lint_imports(config, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 1, out.stdout + out.stderr
    assert "dsmexp.core.maths -> dsmexp.config.schema" in out.stdout
    assert "2 broken" in out.stdout


def test_the_python_api_raises_dsmexp_errors_not_hydra_types(tmp_path):
    from hydra.errors import HydraException

    import dsmexp
    from dsmexp.errors import ConfigError, DsmexpError, RunFileError

    assert not issubclass(DsmexpError, HydraException)
    (tmp_path / "metrics.csv").write_text("epoch,train_loss\n1,0.5\n")
    with pytest.raises(RunFileError, match="not a file dsmexp wrote") as err:
        dsmexp.load_metrics(tmp_path)
    assert isinstance(err.value, DsmexpError) and not isinstance(err.value, (HydraException, ConfigError))


@pytest.mark.parametrize("module", ["dsmexp.errors", "dsmexp.safe_io",
                                    "hydra_plugins.dsmexp_sweeper.dsmexp_sweeper"])
def test_the_bottom_layers_and_the_scanned_plugin_import_neither_torch_nor_pandas(module):
    code = (f"import sys, {module}; heavy = [m for m in ('torch', 'pandas', 'numpy') if m in sys.modules]; "
            "print(heavy); sys.exit(bool(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_help_and_shell_completion_compose_configs_without_importing_torch():
    """Each TAB runs `dsmexp -sc query=bash` anew: it composes the config (every schema registered) but
    imports no training code, so it answers without torch's second of start-up."""
    code = ("import sys\nfrom dsmexp import cli\nfrom dsmexp.config import compose\n"
            "cfg = compose(['loss=ism', 'dataset=gmm'])\n"
            "sys.argv = ['dsmexp', '-sc', 'query=bash']\n"
            "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, cfg.loss.name)")
    env = {**os.environ, "COMP_LINE": "dsmexp lo"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=env)
    assert out.returncode == 0, out.stderr
    completions, verdict = out.stdout.strip().splitlines()[-2:]
    assert "loss=" in completions.split() and "logger=" in completions.split(), out.stdout
    assert verdict == "False ism", out.stdout
