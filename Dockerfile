# itertl image: Icarus Verilog 12 + Verilator + the project's [train,dev] extras, every Python package pinned.
#   make docker-build DEVICE=gpu|cpu             (docker build --build-arg DEVICE=cpu -t itertl:cpu .)
#   docker run --gpus all -v "$PWD/results:/work/results" itertl:gpu train ITERS=7
# The entrypoint is `make`, so the image takes the same targets and variables as the repository.
# DEVICE=gpu: NVIDIA's CUDA 12.8 runtime image, torch's cu128 build, and (WITH_VLLM=auto|1) a vLLM layer.
# DEVICE=cpu: plain Ubuntu 24.04 and torch's CPU build.
ARG DEVICE=gpu

FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS base-gpu
ENV TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128

FROM ubuntu:24.04 AS base-cpu
ENV TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# The stage name comes from DEVICE, which hadolint cannot resolve; both stages above pin their tags.
# hadolint ignore=DL3006
FROM base-${DEVICE}
ARG DEVICE
# auto: vLLM on gpu only (it needs CUDA); 0 or 1 force it off or on.
ARG WITH_VLLM=auto
ARG GIT_COMMIT=unknown
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Ubuntu 24.04 ships Icarus Verilog 12.0 (what VerilogEval needs) and Verilator 5.
# Versions are not pinned: the base image tag fixes the release, and the build checks iverilog is 12.x.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      iverilog verilator make python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && iverilog -V 2>&1 | head -n 1 | grep -q 'version 12\.'

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    HF_HOME=/cache/hf \
    ITERTL_CACHE=/cache/itertl \
    ITERTL_GIT_COMMIT=${GIT_COMMIT}

# torch first from the device's index (--no-deps), then the whole pinned set from PyPI.
COPY docker/constraints-${DEVICE}.txt /opt/itertl/constraints.txt
RUN python3 -m venv /opt/venv \
 && pip install --no-cache-dir --no-deps --index-url "$TORCH_INDEX_URL" torch==2.13.0 \
 && pip install --no-cache-dir -r /opt/itertl/constraints.txt

# Optional layer: vLLM for fast sampling; -c keeps everything installed above at its pinned version.
RUN if [ "$WITH_VLLM" = 1 ] || { [ "$WITH_VLLM" = auto ] && [ "$DEVICE" = gpu ]; }; then \
      pip install --no-cache-dir -c /opt/itertl/constraints.txt vllm==0.32.0; \
    fi

WORKDIR /work
COPY . /work
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . \
 && pip check \
 && useradd --create-home --uid 10001 itertl \
 && mkdir -p /work/results /cache/hf /cache/itertl \
 && chown -R itertl:itertl /work/results /cache

USER 10001:10001
VOLUME ["/work/results", "/cache"]
ENTRYPOINT ["make"]
CMD ["help"]
