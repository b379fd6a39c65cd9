# itertl image: Icarus Verilog 12.0 (built by tools/build_iverilog.sh, as `make tools` does), Verilator and
# bubblewrap from the distribution, and the project's [train,dev,api] extras with every Python package pinned.
#   make docker-build DEVICE=cpu|gpu      (BuildKit required: Docker >= 23 with buildx, or DOCKER_BUILDKIT=1)
#   make docker-train DEVICE=gpu ITERS=7  (docker run --init ... itertl:gpu train 'ITERS=7')
# The entrypoint is `make`, so the image takes the same targets and variables as the repository.
# Build arguments (defaults: the public images and torch's index; override them for mirrors and offline sites):
#   CPU_BASE, GPU_BASE  the base image of each device (any Debian or Ubuntu release with Python >= 3.10);
#   TORCH_INDEX_URL     where torch comes from (default: torch's cpu or cu128 index, by DEVICE);
#   WITH_VLLM           auto (vLLM on gpu only), 0 or 1;  GIT_COMMIT  recorded in the image.
# Build secret pip_cert (optional): a CA bundle for pip, for sites whose HTTPS goes through a proxy.
# DEVICE=gpu differs from DEVICE=cpu only in its base image and torch index: every step is shared.
ARG DEVICE=gpu
ARG CPU_BASE=debian:bookworm-slim
ARG GPU_BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# hadolint ignore=DL3006
FROM ${CPU_BASE} AS base-cpu
# hadolint ignore=DL3006
FROM ${GPU_BASE} AS base-gpu

# Builder: Icarus Verilog 12.0 from the sha256-pinned source, by the same script as the host's `make tools`.
# The base's own iverilog (11 on bookworm) mis-simulates VerilogEval testbenches; this build does not
# depend on the distribution's version.
# hadolint ignore=DL3006
FROM base-${DEVICE} AS iverilog
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gperf bison flex autoconf g++ make zlib1g-dev libbz2-dev curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY tools/build_iverilog.sh /src/tools/build_iverilog.sh
RUN ITERTL_IVERILOG_PREFIX=/opt/iverilog-12 /src/tools/build_iverilog.sh

# hadolint ignore=DL3006
FROM base-${DEVICE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Versions float within the base's release (its tag fixes it); the simulator is the pinned build above.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      verilator bubblewrap make python3 python3-venv ca-certificates zlib1g libbz2-1.0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 itertl \
 && mkdir -p /work/results /cache/hf /cache/itertl \
 && chown -R itertl:itertl /work/results /cache

# The image's jobs run with this environment, never a .venv of their own (PYTHON and INSTALLED are the
# Makefile's variables; INSTALLED empty = nothing to install), and find the simulator via ITERTL_TOOLS_DIR.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/opt/iverilog-12/bin:$PATH \
    PYTHON=/opt/venv/bin/python \
    INSTALLED= \
    ITERTL_TOOLS_DIR=/opt/iverilog-12/bin \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    HF_HOME=/cache/hf \
    ITERTL_CACHE=/cache/itertl

# torch first from the device's index (--no-deps: nothing else may come from there), then the whole
# pinned set. pip's cache lives in a BuildKit cache mount: a rebuild downloads nothing twice and the
# image holds no cache.
ARG DEVICE
ARG TORCH_INDEX_URL=
COPY docker/constraints-${DEVICE}.txt /opt/itertl/constraints.txt
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked --mount=type=secret,id=pip_cert \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
 && flavour=cpu && if [ "$DEVICE" = gpu ]; then flavour=cu128; fi \
 && index=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/$flavour} \
 && echo "torch from $index (whl/cpu for cpu, whl/cu128 for gpu unless TORCH_INDEX_URL is set)" \
 && python3 -m venv /opt/venv \
 && pip install --no-deps --index-url "$index" torch==2.13.0 \
 && pip install -r /opt/itertl/constraints.txt

# Optional layer: vLLM for fast sampling; -c keeps everything installed above at its pinned version.
ARG WITH_VLLM=auto
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked --mount=type=secret,id=pip_cert \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
 && if [ "$WITH_VLLM" = 1 ] || { [ "$WITH_VLLM" = auto ] && [ "$DEVICE" = gpu ]; }; then \
      pip install -c /opt/itertl/constraints.txt vllm==0.32.0; \
    fi

# The simulator joins last: pip above runs while the builder stage compiles it.
COPY --from=iverilog /opt/iverilog-12 /opt/iverilog-12
# The version check reads the built binary; `|| true` because `iverilog -V` alone exits non-zero.
RUN version=$(/opt/iverilog-12/bin/iverilog -V 2>&1 | sed -n 1p || true) \
 && case $version in "Icarus Verilog version 12."*) ;; *) echo "not iverilog 12: $version" >&2; exit 1;; esac

# Declared here, not earlier: a new commit changes only the layers from here on (apt and pip stay cached).
ARG GIT_COMMIT=unknown
WORKDIR /work
COPY . /work
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . \
 && pip check \
 && chown itertl:itertl /work/results
LABEL org.opencontainers.image.revision=${GIT_COMMIT}
ENV ITERTL_GIT_COMMIT=${GIT_COMMIT}

USER 10001:10001
VOLUME ["/work/results", "/cache"]
ENTRYPOINT ["make"]
CMD ["help"]
