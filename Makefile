# Thin wrappers around `python -m ...`. Every target installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
PROFILE ?= quick
SEEDS ?= 1
ARGS ?=
# make test: pytest-xdist workers (0: one process); whole test files go to one worker, so a file's shared
# fixtures are built once
TEST_WORKERS ?= 2
# where `make slurm-up` keeps the one-node cluster's config, pid files, logs, spool and state
SLURM_STATE ?= $(CURDIR)/outputs/slurm

# `make figures noise.kernel=laplace`: command-line assignments whose names hold a dot are Hydra overrides
HYDRA_OVERRIDES := $(foreach v,$(MAKEOVERRIDES),$(if $(findstring .,$(firstword $(subst =, ,$(v)))),$(v)))

PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-slow sweep figures results dimension multiscale sampling variance kernels energy bench lint clean slurm-up slurm-down

# While the cluster started by `make slurm-up` runs, every target talks to it (unless SLURM_CONF is set).
ifneq ($(wildcard $(SLURM_STATE)/slurmctld.pid),)
export SLURM_CONF ?= $(SLURM_STATE)/slurm.conf
endif

install: $(STAMP)

# torch goes in first, pinned, so resolving the package's own dependencies never pulls another build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(PY) -m pip install --quiet -e ".[dev,tracking]"
	touch $@

run: install
	$(PY) -m dsmexp $(ARGS)

# make test: the default suite, without the end-to-end studies marked slow (make test-slow runs those;
# .ci/run runs both)
TEST_MARKS ?= not slow
test: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "$(TEST_MARKS)" $(ARGS)

test-slow: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m slow $(ARGS)

sweep: install
	$(PY) -m dsmexp -m loss=ism,dsm_s sigma=0,1e-4,1e-3,1e-2,1e-1 $(ARGS)

figures: install
	$(VENV)/bin/dsmexp-figures --profile $(PROFILE) --seeds $(SEEDS) $(ARGS) $(HYDRA_OVERRIDES)

# docs/results/: the paper profile (seed 0; Gaussian, Laplace and Student-t noise), the quick profile over 5 seeds, the dimension, multi-scale, sampling,
# variance, noise-kernel and energy studies (saved runs reused)
results: install
	$(PY) scripts/results.py $(ARGS)

dimension: install
	$(VENV)/bin/dsmexp-dimension --profile $(PROFILE) $(ARGS)

# the diffusion regime: five objectives across two noise schedules, three data sets, three seeds
multiscale: install
	$(VENV)/bin/dsmexp-multiscale --profile $(PROFILE) $(ARGS)

# from scores to samples: the toy of Song & Ermon (2019), every sampler on the exact and the learned scores
sampling: install
	$(VENV)/bin/dsmexp-sampling --profile $(PROFILE) $(ARGS)

# taming DSM at small sigma: control variate, antithetic noise and TSM against DSM-S and ISM, by gradient variance
variance: install
	$(PY) -m dsmexp.studies.variance.make --profile $(PROFILE) $(ARGS)

# other noise kernels: the paper study's sweeps under gaussian, laplace and student_t noise, and the kernel claims
kernels: install
	$(PY) -m dsmexp.studies.kernels.make --profile $(PROFILE) $(ARGS)

# energy against score parametrisation: ISM and DSM-S, a free-form score MLP and an MLP energy, three seeds
energy: install
	$(PY) -m dsmexp.studies.energy.make --profile $(PROFILE) $(ARGS)

bench: install
	$(VENV)/bin/dsmexp-bench $(ARGS)

lint: install
	$(PY) -m ruff check dsmexp hydra_plugins scripts tests
	$(VENV)/bin/lint-imports --no-cache

slurm-up:
	scripts/slurm-up.sh $(SLURM_STATE)

slurm-down:
	scripts/slurm-down.sh $(SLURM_STATE)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info build dist
