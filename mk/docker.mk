# Docker targets, included by the top-level Makefile. The image's entrypoint is `make`, so
# `make docker-train ITERS=7` runs `make train ITERS=7` in the container: every variable named in
# DOCKER_VARS that is set here is passed on; ./results and a cache dir are mounted.
DEVICE ?= gpu
IMAGE ?= itertl:$(DEVICE)
WITH_VLLM ?= auto
DOCKER ?= docker
DOCKER_CACHE ?= $(CURDIR)/.cache/docker
# Make variables forwarded into the container (when non-empty). Paths must lie under results/.
DOCKER_VARS ?= BENCH SAMPLES MODEL PROBLEMS K N RUN FAIL_UNDER WORKERS TIMEOUT LIMIT ALLOW_MISSING \
  TEMPERATURE TOP_P DATA FILTER SEED ITERS PRESET QUANT MODE SCORE RESTART EVAL_BENCH DRY_RUN CONFIG \
  SAMPLER GPUS DISTRIBUTED GPU_TYPE MEASURED_FROM PYTEST_ARGS
# Data directories: when set in the environment, mounted read-only at the same path and passed on.
DOCKER_DATA_ENV ?= VERILOG_EVAL_V1_DIR VERILOG_EVAL_V2_DIR RTLCODER_SMALL_DIR
# Extra `docker run` options (e.g. --shm-size=16g for multi-worker data loading).
DOCKER_RUN_ARGS ?=

is_set = $(and $(filter-out undefined,$(origin $(1))),$(strip $($(1))))
docker_make_args = $(strip $(foreach v,$(DOCKER_VARS),$(if $(call is_set,$(v)),'$(v)=$($(v))')))
docker_data_args = $(strip $(foreach v,$(DOCKER_DATA_ENV),$(if $(call is_set,$(v)),-e $(v)=$($(v)) -v $($(v)):$($(v)):ro)))
# Runs as the caller's uid so files written to ./results belong to them; HOME lives in the cache.
docker_run = $(DOCKER) run --rm $(if $(filter gpu,$(DEVICE)),--gpus all) --user "$$(id -u):$$(id -g)" \
  -e HOME=/cache/home -v "$(CURDIR)/results:/work/results" -v "$(DOCKER_CACHE):/cache" \
  $(docker_data_args) $(DOCKER_RUN_ARGS) $(IMAGE)

.PHONY: docker-check docker-build docker-train docker-eval docker-test docker-lock

docker-check:
	@command -v $(DOCKER) >/dev/null || { echo "error: $(DOCKER) is not installed: install Docker Engine to use the docker-* targets" >&2; exit 2; }
	@$(DOCKER) info >/dev/null 2>&1 || { echo "error: no Docker engine answers (docker info failed): start it (e.g. sudo systemctl start docker) and retry" >&2; exit 2; }
	@mkdir -p results "$(DOCKER_CACHE)/home"

docker-build: docker-check ## build the image itertl:DEVICE (DEVICE=gpu|cpu, WITH_VLLM=auto|0|1)
	$(DOCKER) build --build-arg DEVICE=$(DEVICE) --build-arg WITH_VLLM=$(WITH_VLLM) \
	  --build-arg GIT_COMMIT="$$(git rev-parse HEAD 2>/dev/null || echo unknown)" -t $(IMAGE) .

docker-train: docker-check ## `make train` inside the image (ITERS= MODEL= DATA= K= QUANT= MODE= RUN= ...)
	$(docker_run) train $(docker_make_args)

docker-eval: docker-check ## `make eval` inside the image (BENCH= MODEL= SAMPLES= N= K= RUN= ...)
	$(docker_run) eval $(docker_make_args)

docker-test: docker-check ## run the test suite inside the image (`make test`, PYTEST_ARGS= passed on)
	$(docker_run) test $(docker_make_args)

# /work is read-only for the container user: keep pytest from trying to write its cache there.
docker-test: DOCKER_RUN_ARGS += -e PYTEST_ADDOPTS="-p no:cacheprovider"

docker-lock: docker-check ## print the image's `pip freeze` (to refresh docker/constraints-DEVICE.txt)
	$(DOCKER) run --rm --entrypoint pip $(IMAGE) freeze --exclude-editable
