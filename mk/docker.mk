# Docker targets, included by the top-level Makefile. The image's entrypoint is `make`, so
# `make docker-train ITERS=7` runs `make train ITERS=7` in the container: every variable named in
# DOCKER_VARS that is set here is passed on; results and a cache dir are mounted.
DEVICE ?= gpu
IMAGE ?= itertl:$(DEVICE)
WITH_VLLM ?= auto
DOCKER ?= docker
DOCKER_CACHE ?= $(CURDIR)/.cache/docker
DOCKER_RESULTS ?= $(CURDIR)/results
# Build arguments; empty = the Dockerfile's default (public base images, torch's own index).
CPU_BASE ?=
GPU_BASE ?=
TORCH_INDEX_URL ?=
# A CA bundle for pip inside the build (HTTPS through an intercepting proxy), passed as a build secret.
PIP_CERT_FILE ?=
# Extra `docker build` options (e.g. --network host to reach a local index).
DOCKER_BUILD_ARGS ?=
# Recorded in the image (label and ITERTL_GIT_COMMIT).
GIT_COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# Make variables forwarded into the container (when non-empty). Paths must lie under results/.
DOCKER_VARS ?= BENCH SAMPLES MODEL PROBLEMS K N RUN FAIL_UNDER WORKERS TIMEOUT LIMIT ALLOW_MISSING \
  TEMPERATURE TOP_P DATA FILTER SEED ITERS PRESET QUANT MODE SCORE RESTART EVAL_BENCH DRY_RUN CONFIG \
  SAMPLER GPUS DISTRIBUTED GPU_TYPE MEASURED_FROM PYTEST_ARGS TEST_JOBS CONTAINMENT DATA_SEED WARMUP_LIMIT \
  WARMUP_EPOCHS INSTRUCTIONS_PER_ITER OPTIMIZER_SCHEDULE ALPHA EVAL_N EVAL_TEMPERATURE EVAL_EVERY \
  EVAL_SIM_SECONDS TRAIN_ARGS SHARD TEMPLATE MAX_NEW_TOKENS MAX_LINE_BYTES CONCURRENCY RETRIES
# Data directories: when set in the environment, mounted read-only at the same path and passed on.
DOCKER_DATA_ENV ?= VERILOG_EVAL_V1_DIR VERILOG_EVAL_V2_DIR RTLCODER_SMALL_DIR RTLLM_V2_DIR
# The container's user: yours, so that ./results stays yours; the image's own user (10001) when you are
# root (the results and cache folders are then handed to uid 10001).
DOCKER_USER ?= $(if $(filter 0,$(shell id -u)),10001:10001,$(shell id -u):$(shell id -g))
# The container as a sandbox: a read-only root, no capabilities, no privilege gain. Docker's default
# seccomp profile forbids the user namespaces that bubblewrap (the simulators' containment) needs, so it
# is lifted; every other layer stays (see docs/docker.md).
DOCKER_SECURITY ?= --read-only --tmpfs /tmp:rw,exec,nosuid,nodev --cap-drop ALL \
  --security-opt no-new-privileges --security-opt seccomp=unconfined
# Extra `docker run` options (e.g. --shm-size=16g for multi-worker data loading).
DOCKER_RUN_ARGS ?=

is_set = $(and $(filter-out undefined,$(origin $(1))),$(strip $($(1))))
docker_make_args = $(strip $(foreach v,$(DOCKER_VARS),$(if $(call is_set,$(v)),'$(v)=$($(v))')))
docker_data_args = $(strip $(foreach v,$(DOCKER_DATA_ENV),$(if $(call is_set,$(v)),-e $(v)=$($(v)) -v $($(v)):$($(v)):ro)))
docker_build_args = $(strip $(foreach v,CPU_BASE GPU_BASE TORCH_INDEX_URL,$(if $(call is_set,$(v)),--build-arg $(v)=$($(v)))) \
  $(if $(call is_set,PIP_CERT_FILE),--secret id=pip_cert$(comma)src=$(PIP_CERT_FILE)))
comma := ,
# --init: docker-init is PID 1 and forwards `docker stop`'s SIGTERM to make, which passes it on; without
# it make (PID 1) ignores the signal and docker kills everything after 10 s.
docker_run = $(DOCKER) run --rm --init $(if $(filter gpu,$(DEVICE)),--gpus all) --user "$(DOCKER_USER)" \
  $(DOCKER_SECURITY) -e HOME=/cache/home -v "$(DOCKER_RESULTS):/work/results" -v "$(DOCKER_CACHE):/cache" \
  $(docker_data_args) $(DOCKER_RUN_ARGS) $(IMAGE)

.PHONY: docker-check docker-buildkit docker-build docker-train docker-eval docker-test docker-lock docker-ci

docker-check:
	@command -v $(DOCKER) >/dev/null || { echo "error: $(DOCKER) is not installed: install Docker Engine to use the docker-* targets" >&2; exit 2; }
	@$(DOCKER) info >/dev/null 2>&1 || { echo "error: no Docker engine answers (docker info failed): start it (e.g. sudo systemctl start docker) and retry" >&2; exit 2; }
	@mkdir -p "$(DOCKER_RESULTS)" "$(DOCKER_CACHE)/home"
	@if [ "$$(id -u)" = 0 ] && [ "$(DOCKER_USER)" != 0 ] && [ "$(DOCKER_USER)" != 0:0 ]; then \
	  chown "$(DOCKER_USER)" "$(DOCKER_RESULTS)" "$(DOCKER_CACHE)" "$(DOCKER_CACHE)/home"; fi

# BuildKit builds only the stages DEVICE needs and knows RUN --mount; the legacy builder does neither.
# Docker >= 23 builds with BuildKit through the buildx plugin; 18.09-22.x have it built in (DOCKER_BUILDKIT=1).
docker-buildkit:
	@$(DOCKER) buildx version >/dev/null 2>&1 || case "$$($(DOCKER) version --format '{{.Client.Version}}' 2>/dev/null)" in \
	  18.09*|19.*|20.*|21.*|22.*) ;; \
	  *) echo "error: docker-build needs BuildKit, and $$(command -v $(DOCKER)) has no buildx plugin: install docker-buildx-plugin (or Debian's docker.io and DOCKER=/usr/bin/docker)" >&2; exit 2;; esac

docker-build: docker-check docker-buildkit ## build the image itertl:DEVICE (DEVICE=gpu|cpu, WITH_VLLM=auto|0|1, CPU_BASE= TORCH_INDEX_URL= ...)
	DOCKER_BUILDKIT=1 $(DOCKER) build --build-arg DEVICE=$(DEVICE) --build-arg WITH_VLLM=$(WITH_VLLM) \
	  $(docker_build_args) $(DOCKER_BUILD_ARGS) \
	  --build-arg GIT_COMMIT=$(GIT_COMMIT) -t $(IMAGE) .

docker-train: docker-check ## `make train` inside the image (ITERS= MODEL= DATA= K= QUANT= MODE= RUN= ...)
	$(docker_run) train $(docker_make_args)

docker-eval: docker-check ## `make eval` inside the image (BENCH= MODEL= SAMPLES= N= K= RUN= ...)
	$(docker_run) eval $(docker_make_args)

docker-test: docker-check ## run the test suite inside the image (`make test`, PYTEST_ARGS= passed on)
	$(docker_run) test $(docker_make_args)

# /work is read-only in the container: keep pytest from trying to write its cache there.
docker-test: DOCKER_RUN_ARGS += -e PYTEST_ADDOPTS="-p no:cacheprovider"

docker-lock: docker-check ## print the image's `pip freeze` (to refresh docker/constraints-DEVICE.txt)
	$(DOCKER) run --rm --entrypoint pip $(IMAGE) freeze --exclude-editable

docker-ci: ## what CI does: engine, local base if needed, build itertl:cpu, self-check + suite + stop test inside
	docker/ci.sh all
