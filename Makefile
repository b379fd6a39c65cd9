# itertl: a thin, strict driver. All logic lives in Python (python -m harness ...); every variable
# below maps one-to-one onto a command-line flag of that CLI. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules --warn-undefined-variables

VENV   ?= .venv
# The project's virtual environment, made by `make install` (which every job target triggers once).
# To use an existing environment instead: make train PYTHON=python3 INSTALLED=
PYTHON ?= $(VENV)/bin/python
INSTALLED ?= $(VENV)/.itertl-installed
ITERTL := $(PYTHON) -m harness

# Optional variables: empty means "use the preset / CLI default".
BENCH ?=
SAMPLES ?=
MODEL ?=
PROBLEMS ?=
K ?=
N ?=
RUN ?=
FAIL_UNDER ?=
WORKERS ?=
TIMEOUT ?=
MAX_LINE_BYTES ?=
LIMIT ?=
ALLOW_MISSING ?=
TEMPERATURE ?=
TOP_P ?=
DATA ?=
FILTER ?=
SEED ?=
ITERS ?=
PRESET ?=
QUANT ?=
MODE ?=
SCORE ?=
RESTART ?=
EVAL_BENCH ?=
DRY_RUN ?=
CONFIG ?=
SAMPLER ?=
GPUS ?=
DISTRIBUTED ?=
GPU_TYPE ?=
MEASURED_FROM ?=
PYTEST_ARGS ?=
TEST_JOBS ?=
RUNS ?=
JOBS ?=
EXPERIMENT ?=
SEEDS ?=
DATA_SEED ?=
WARMUP_LIMIT ?=
WARMUP_EPOCHS ?=
INSTRUCTIONS_PER_ITER ?=
OPTIMIZER_SCHEDULE ?=
ALPHA ?=
EVAL_N ?=
EVAL_TEMPERATURE ?=
EVAL_EVERY ?=
EVAL_SIM_SECONDS ?=
# Any other train flag (`python -m harness train --help`), passed through as written: TRAIN_ARGS='--lora-r 8'
TRAIN_ARGS ?=
SCORES ?=
ONLY ?=
SCALE ?=
# Containment of every simulator process: bwrap (default) or none (an explicit opt-out, recorded in
# metrics.json and the manifest); passed to the tools as ITERTL_CONTAINMENT.
CONTAINMENT ?=
ifneq ($(strip $(CONTAINMENT)),)
export ITERTL_CONTAINMENT := $(CONTAINMENT)
endif
SHARD ?=
TEMPLATE ?=
CONCURRENCY ?=
RETRIES ?=
API_CACHE ?=
HOST ?=
PORT ?=
MAX_NEW_TOKENS ?=
RESULTS_DIR ?=

# $(call flag,--name,VALUE) renders "--name VALUE" only when VALUE is set.
flag = $(if $(strip $(2)),$(1) $(2),)

EVAL_FLAGS = $(call flag,--bench,$(BENCH)) $(call flag,--samples,$(SAMPLES)) $(call flag,--model,$(MODEL)) \
  $(call flag,--problems,$(PROBLEMS)) $(call flag,--k,$(K)) $(call flag,--n,$(N)) $(call flag,--run,$(RUN)) \
  $(call flag,--fail-under,$(FAIL_UNDER)) $(call flag,--workers,$(WORKERS)) $(call flag,--timeout,$(TIMEOUT)) \
  $(call flag,--max-line-bytes,$(MAX_LINE_BYTES)) $(call flag,--limit,$(LIMIT)) $(if $(filter 1 yes true,$(ALLOW_MISSING)),--allow-missing,) \
  $(call flag,--temperature,$(TEMPERATURE)) $(call flag,--top-p,$(TOP_P)) $(call flag,--seed,$(SEED))

# Sharding and API models (MODEL=openai:<name>); see docs/evaluation.md ("API models, shards").
EVAL_FLAGS += $(call flag,--shard,$(SHARD)) $(call flag,--template,$(TEMPLATE)) \
  $(call flag,--concurrency,$(CONCURRENCY)) $(call flag,--retries,$(RETRIES)) $(call flag,--api-cache,$(API_CACHE)) \
  $(call flag,--max-new-tokens,$(MAX_NEW_TOKENS)) $(call flag,--results-dir,$(RESULTS_DIR))

DATA_FLAGS = $(call flag,--data,$(DATA)) $(call flag,--filter,$(FILTER)) $(call flag,--run,$(RUN)) \
  $(call flag,--seed,$(SEED)) $(call flag,--limit,$(LIMIT)) $(call flag,--workers,$(WORKERS)) $(call flag,--score,$(SCORE))

TRAIN_FLAGS = $(call flag,--iters,$(ITERS)) $(call flag,--preset,$(PRESET)) $(call flag,--model,$(MODEL)) \
  $(call flag,--data,$(DATA)) $(call flag,--k,$(K)) $(call flag,--quant,$(QUANT)) $(call flag,--mode,$(MODE)) \
  $(call flag,--score,$(SCORE)) $(call flag,--run,$(RUN)) $(call flag,--filter,$(FILTER)) \
  $(call flag,--seed,$(SEED)) $(call flag,--eval-bench,$(EVAL_BENCH)) $(call flag,--workers,$(WORKERS)) \
  $(call flag,--config,$(CONFIG)) $(call flag,--limit,$(LIMIT)) $(call flag,--sampler,$(SAMPLER)) \
  $(call flag,--gpus,$(GPUS)) $(call flag,--distributed,$(DISTRIBUTED)) $(call flag,--gpu-type,$(GPU_TYPE)) \
  $(call flag,--measured-from,$(MEASURED_FROM)) \
  $(if $(filter 1 yes true,$(RESTART)),--restart,) $(if $(filter 1 yes true,$(DRY_RUN)),--dry-run,)

# The experiment's loop (docs/method.md): data seed, warm start, iteration data and optimiser, held-out evaluation.
TRAIN_FLAGS += $(call flag,--data-seed,$(DATA_SEED)) $(call flag,--warmup-limit,$(WARMUP_LIMIT)) \
  $(call flag,--warmup-epochs,$(WARMUP_EPOCHS)) $(call flag,--instructions-per-iter,$(INSTRUCTIONS_PER_ITER)) \
  $(call flag,--optimizer-schedule,$(OPTIMIZER_SCHEDULE)) $(call flag,--alpha,$(ALPHA)) \
  $(call flag,--eval-n,$(EVAL_N)) $(call flag,--eval-temperature,$(EVAL_TEMPERATURE)) \
  $(call flag,--eval-every,$(EVAL_EVERY)) $(call flag,--eval-sim-seconds,$(EVAL_SIM_SECONDS)) $(TRAIN_ARGS)

ABLATION_FLAGS = $(call flag,--iters,$(ITERS)) $(call flag,--preset,$(PRESET)) $(call flag,--config,$(CONFIG)) \
  $(call flag,--run,$(RUN)) $(call flag,--seed,$(SEED)) $(call flag,--jobs,$(JOBS)) $(call flag,--data,$(DATA)) \
  $(call flag,--eval-bench,$(EVAL_BENCH)) $(call flag,--limit,$(LIMIT))

EXPERIMENT_FLAGS = $(call flag,--experiment,$(EXPERIMENT)) $(call flag,--preset,$(PRESET)) \
  $(call flag,--config,$(CONFIG)) $(call flag,--seeds,$(SEEDS)) $(call flag,--scores,$(SCORES)) \
  $(call flag,--iters,$(ITERS)) $(call flag,--limit,$(LIMIT)) $(call flag,--jobs,$(JOBS)) $(call flag,--run,$(RUN)) \
  $(call flag,--results-dir,$(RESULTS_DIR))

BENCH_FLAGS = $(call flag,--run,$(RUN)) $(call flag,--only,$(ONLY)) $(call flag,--scale,$(SCALE)) \
  $(call flag,--workers,$(WORKERS))

.PHONY: help install eval data train test test-all lint report compare ablation experiment bench

help: ## list the targets and what they do
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN {FS = ":.*## "}; {printf "  %-16s %s\n", $$1, $$2}'

install: $(INSTALLED) ## create .venv with the CPU torch wheel and the project's [train,dev,api] extras

# torch first and pinned, so that no later requirement can pull a CUDA build into a CPU machine.
$(VENV)/.itertl-installed: pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[train,dev,api]'
	touch $@

# Every job needs the Python environment and the simulator; both steps do nothing once done.
eval data train test test-all ablation experiment bench: $(INSTALLED) | tools
report compare: $(INSTALLED)

eval: ## score samples (SAMPLES=) or a model (MODEL=reference|path|run folder) on BENCH= into results/RUN
	$(ITERTL) eval $(EVAL_FLAGS)

data: ## prepare a training set (DATA=synthetic|resyn27k|path, FILTER=0|1, SCORE=equivalence self-checks references) into a versioned, hashed folder
	$(ITERTL) data $(DATA_FLAGS)

train: ## run ITERTL iterations (ITERS=7 PRESET=tiny-cpu|paper MODE=iterative|static ...) into results/RUN
	$(ITERTL) train $(TRAIN_FLAGS)

report: ## rebuild report.md and the plots of a run folder (RUN=results/NAME or NAME)
	$(ITERTL) report $(if $(strip $(RUN)),$(RUN),$(error set RUN=<run folder>))

compare: ## put several runs side by side (RUNS="a b ...") in a new results/compare-* folder
	$(ITERTL) compare $(if $(strip $(RUNS)),$(RUNS),$(error set RUNS="<run> <run> ..."))

ablation: ## the paper's grid {iterative,static} x {filter on,off} on the preset (JOBS= arms in parallel)
	$(ITERTL) ablation $(ABLATION_FLAGS)

experiment: ## pre-registered iterative vs static vs CE-only x scores x seeds with intervals (EXPERIMENT=, SEEDS=, SCORES=, JOBS=)
	$(ITERTL) experiment $(EXPERIMENT_FLAGS)

bench: ## speed and memory against the obvious baselines (ONLY=name,... SCALE=full|small) into results/RUN
	$(ITERTL) bench $(BENCH_FLAGS)

# GPU_CHECK_ALLOW_CPU=1 (an environment variable, read by the script) runs the stages on the CPU.
.PHONY: gpu-check
gpu-check: $(INSTALLED) | tools
gpu-check: ## the GPU path in one offline command, stage by stage with pass/fail and peak memory (RUN= names it)
	$(PYTHON) -m harness.commands.gpu_check $(call flag,--run,$(RUN))

.PHONY: merge serve
merge serve: $(INSTALLED)

merge: ## join the shards of one SHARD=i/N evaluation (RUNS="a b ...") into one run folder (RUN= names it)
	$(ITERTL) merge $(if $(strip $(RUNS)),$(RUNS),$(error set RUNS="<shard run> <shard run> ...")) $(call flag,--run,$(RUN)) \
	  $(call flag,--results-dir,$(RESULTS_DIR))

serve: ## serve MODEL= (run folder or HF model folder) as an OpenAI-compatible endpoint on HOST:PORT (127.0.0.1:8000)
	$(ITERTL) serve $(call flag,--model,$(MODEL)) $(call flag,--host,$(HOST)) $(call flag,--port,$(PORT)) \
	  $(call flag,--max-new-tokens,$(MAX_NEW_TOKENS))

test: ## run the default test suite (fast; no slow or GPU tests), TEST_JOBS processes at once
	$(PYTHON) -m pytest -m "not slow and not gpu" -n $(or $(TEST_JOBS),auto) $(PYTEST_ARGS)

test-all: ## run every test, slow ones included (GPU tests skip without CUDA)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

include mk/tools.mk mk/docker.mk
