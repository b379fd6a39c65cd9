#!/usr/bin/env bash
# Build itertl:cpu and check it from inside (called by .ci/run; `make docker-ci` runs all of it).
#   docker/ci.sh build        engine (started when none answers), base image, torch index, itertl:cpu,
#                             a rebuild that must reuse the apt and pip layers, the GPU stage on the CPU base
#   docker/ci.sh check        inside itertl:cpu, offline, as uid 10001: bubblewrap, the VerilogEval v1 Human
#                             self-check (156/156), the default test suite, `docker stop` of a training run
#   docker/ci.sh check-stop   only the `docker stop` check
#   docker/ci.sh stop-engine  stop the engine if `build` started it
#   docker/ci.sh all          the three in order
# Where no registry answers (this project's machines), the base is made from Debian's archive
# (debootstrap bookworm + docker import) and torch comes from the CPU wheel pip finds on this machine,
# served on 127.0.0.1 as the TORCH_INDEX_URL build argument. Everything it writes is under .cache/docker-ci.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly PUBLIC_BASE=debian:bookworm-slim
readonly LOCAL_BASE=itertl-local/debian:bookworm
readonly STATE=.cache/docker-ci
readonly NAME_PREFIX=itertl-ci
mkdir -p "$STATE"

say() { echo "docker-ci: $*"; }
die() { echo "error: docker-ci: $*" >&2; exit 1; }

# Docker >= 23 builds with BuildKit only through buildx; Debian's 20.10 CLI has it built in.
pick_docker() {
    if [[ -n ${DOCKER:-} ]]; then echo "$DOCKER"
    elif docker buildx version >/dev/null 2>&1; then echo docker
    elif [[ -x /usr/bin/docker ]]; then echo /usr/bin/docker
    else echo docker
    fi
}
DOCKER=$(pick_docker)
export DOCKER

start_engine() {
    if "$DOCKER" info >/dev/null 2>&1; then say "engine already running"; return; fi
    command -v dockerd >/dev/null || die "no Docker engine answers and dockerd is not installed (apt-get install docker.io)"
    say "starting dockerd (log: $STATE/dockerd.log)"
    # No iptables: every build and run here uses --network host or --network none.
    setsid dockerd --iptables=false --ip-masq=false --storage-driver=overlay2 \
        --pidfile "$PWD/$STATE/dockerd.pid" >"$STATE/dockerd.log" 2>&1 </dev/null &
    echo $! >"$STATE/dockerd.started"
    for _ in $(seq 60); do "$DOCKER" info >/dev/null 2>&1 && return; sleep 1; done
    tail -n 20 "$STATE/dockerd.log" >&2
    die "dockerd did not answer within 60 s"
}

stop_engine() {
    [[ -f $STATE/dockerd.started ]] || return 0
    local pid
    pid=$(cat "$STATE/dockerd.started")
    rm -f "$STATE/dockerd.started"
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || { say "engine stopped"; return 0; }; sleep 1; done
    say "dockerd $pid still running after 30 s"
}

# The public base when it can be pulled, else one made from Debian's archive (kept between runs).
base_image() {
    if timeout 120 "$DOCKER" pull -q "$PUBLIC_BASE" >/dev/null 2>&1; then echo "$PUBLIC_BASE"; return; fi
    if ! "$DOCKER" image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
        local mirror root=$STATE/rootfs
        mirror=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
                 | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n 1 | tr -d ' ' || true)
        mirror=${mirror:-http://deb.debian.org/debian}
        say "$PUBLIC_BASE cannot be pulled: debootstrap bookworm from ${mirror%/} into $LOCAL_BASE" >&2
        rm -rf "$root"
        debootstrap --variant=minbase bookworm "$root" "${mirror%/}" >"$STATE/debootstrap.log" 2>&1 \
            || { tail -n 20 "$STATE/debootstrap.log" >&2; die "debootstrap failed"; }
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
        tar -C "$root" -c . | "$DOCKER" import - "$LOCAL_BASE" >/dev/null
        rm -rf "$root"
    fi
    echo "$LOCAL_BASE"
}

# A simple index on 127.0.0.1 holding the CPU torch wheel that pip finds here; prints its URL.
serve_torch() {
    local index=$STATE/torch-index wheel port
    mkdir -p "$index/torch"
    if ! compgen -G "$index/torch/torch-2.13.0+cpu-*.whl" >/dev/null; then
        python3 -m pip download -q --no-deps --only-binary :all: -d "$index/torch" 'torch==2.13.0' >&2 \
            || die "pip cannot find torch 2.13.0 here"
    fi
    wheel=$(compgen -G "$index/torch/torch-2.13.0*.whl" | head -n 1)
    [[ $wheel == *+cpu-* ]] || die "the torch wheel pip found is not the CPU build: $wheel"
    # A fixed port: the URL is a build argument, part of the pip layer's cache key.
    port=${ITERTL_TORCH_INDEX_PORT:-8736}
    ! curl -s -o /dev/null "http://127.0.0.1:$port/" || die "port $port is taken: set ITERTL_TORCH_INDEX_PORT"
    python3 -m http.server --bind 127.0.0.1 --directory "$index" "$port" >"$STATE/torch-index.log" 2>&1 &
    echo $! >"$STATE/torch-index.pid"
    for _ in $(seq 20); do curl -fs "http://127.0.0.1:$port/torch/" >/dev/null && break; sleep 0.5; done
    echo "http://127.0.0.1:$port/"
}

stop_torch() {
    [[ -f $STATE/torch-index.pid ]] && kill "$(cat "$STATE/torch-index.pid")" 2>/dev/null || true
    rm -f "$STATE/torch-index.pid"
}

build() {
    local t base index
    start_engine
    t=$SECONDS; base=$(base_image); say "base image: $base ($((SECONDS - t)) s)"
    index=$(serve_torch); say "torch index: $index"
    trap stop_torch EXIT
    local args=("DOCKER=$DOCKER" "TORCH_INDEX_URL=$index" "PIP_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
                "DOCKER_BUILD_ARGS=--network host --progress plain")

    # The builder stage first: its Icarus Verilog (prefix /opt/iverilog-12) is copied to $STATE/iverilog-12,
    # and $STATE/iverilog.ready tells .ci/run, which gives the host the same build instead of compiling twice.
    t=$SECONDS
    rm -rf "$STATE/iverilog-12" "$STATE/iverilog.ready"
    make --no-print-directory docker-build DEVICE=cpu CPU_BASE="$base" IMAGE="$NAME_PREFIX:iverilog" "${args[@]:0:3}" \
        "DOCKER_BUILD_ARGS=--network host --progress plain --target iverilog" >"$STATE/build-iverilog.log" 2>&1 \
        || { tail -n 40 "$STATE/build-iverilog.log" >&2; die "building the iverilog stage failed"; }
    "$DOCKER" rm -f "$NAME_PREFIX-iverilog" >/dev/null 2>&1 || true
    "$DOCKER" create --name "$NAME_PREFIX-iverilog" "$NAME_PREFIX:iverilog" true >/dev/null
    "$DOCKER" cp "$NAME_PREFIX-iverilog:/opt/iverilog-12" "$STATE/iverilog-12"
    "$DOCKER" rm "$NAME_PREFIX-iverilog" >/dev/null
    touch "$STATE/iverilog.ready"
    say "iverilog stage built in $((SECONDS - t)) s ($(cat "$STATE/iverilog-12/.itertl-stamp"))"

    t=$SECONDS
    make --no-print-directory docker-build DEVICE=cpu CPU_BASE="$base" "${args[@]}" >"$STATE/build-cpu.log" 2>&1 \
        || { tail -n 40 "$STATE/build-cpu.log" >&2; die "building itertl:cpu failed (log: $STATE/build-cpu.log)"; }
    echo "build_s=$((SECONDS - t))" >"$STATE/figures"
    say "itertl:cpu built in $((SECONDS - t)) s, $(image_size itertl:cpu)"

    # What a new commit costs: the layers after ARG GIT_COMMIT run again, the apt and pip layers must not.
    t=$SECONDS
    make --no-print-directory docker-build DEVICE=cpu CPU_BASE="$base" IMAGE="$NAME_PREFIX:rebuild" \
        GIT_COMMIT="rebuild-check-$(date +%s)" "${args[@]}" >"$STATE/rebuild.log" 2>&1 \
        || { tail -n 40 "$STATE/rebuild.log" >&2; die "rebuild failed (log: $STATE/rebuild.log)"; }
    local step redone=""
    for step in $(grep -E '^#[0-9]+ \[[^]]+\] RUN .*(apt-get update|pip install -r|pip install -c)' "$STATE/rebuild.log" \
                  | cut -d' ' -f1 | sort -u); do
        grep -q "^$step CACHED" "$STATE/rebuild.log" || redone+=" $step"
    done
    [[ -z $redone ]] || die "a rebuild after a new commit re-ran apt or pip (steps$redone in $STATE/rebuild.log)"
    echo "rebuild_s=$((SECONDS - t))" >>"$STATE/figures"
    say "rebuild with a new GIT_COMMIT: $((SECONDS - t)) s, apt and pip layers reused"
    "$DOCKER" rmi "$NAME_PREFIX:rebuild" >/dev/null

    # The GPU stage with the CPU base: every step but CUDA (and vLLM, which needs it).
    t=$SECONDS
    make --no-print-directory docker-build DEVICE=gpu GPU_BASE="$base" WITH_VLLM=0 IMAGE="$NAME_PREFIX:gpu-stage" \
        "${args[@]}" >"$STATE/build-gpu-stage.log" 2>&1 \
        || { tail -n 40 "$STATE/build-gpu-stage.log" >&2; die "building the GPU stage on the CPU base failed"; }
    # shellcheck disable=SC2046  # the options are words
    "$DOCKER" run --rm --network none --user 10001:10001 $(security_options) "$NAME_PREFIX:gpu-stage" \
        --no-print-directory tools \
        >"$STATE/gpu-stage-tools.log" 2>&1 || { cat "$STATE/gpu-stage-tools.log" >&2; die "make tools failed in the GPU stage"; }
    echo "gpu_stage_s=$((SECONDS - t))" >>"$STATE/figures"
    say "GPU stage (CPU base: no CUDA, no vLLM) built and ran \`make tools\` in $((SECONDS - t)) s"
    "$DOCKER" rmi "$NAME_PREFIX:gpu-stage" >/dev/null
}

# DOCKER_SECURITY from mk/docker.mk: the options every `make docker-*` run uses (bwrap needs them).
security_options() {
    make -s --no-print-directory -f mk/docker.mk --eval 'print-security: ; @echo $(DOCKER_SECURITY)' print-security
}

image_size() { "$DOCKER" image inspect -f '{{.Size}}' "$1" | awk '{printf "%.2f GB", $1 / 1e9}'; }

# The upstream data beside the checkout (as CI lays it out), unless the caller points elsewhere.
shared=$(cd .. && pwd)/shared/datasets
for pair in VERILOG_EVAL_V1_DIR=verilog-eval-v1 VERILOG_EVAL_V2_DIR=verilog-eval-v2 \
            RTLCODER_SMALL_DIR=rtlcoder-small RTLLM_V2_DIR=rtllm-v2; do
    var=${pair%%=*}
    if [[ -z ${!var:-} && -d $shared/${pair#*=} ]]; then export "$var=$shared/${pair#*=}"; fi
done

# make docker-* as CI runs them: offline, as uid 10001, results and cache under $STATE.
in_image() {
    local extra=$1; shift
    make --no-print-directory "$@" DEVICE=cpu IMAGE=itertl:cpu DOCKER="$DOCKER" DOCKER_USER=10001:10001 \
        DOCKER_RESULTS="$PWD/$STATE/results" DOCKER_CACHE="$PWD/$STATE/cache" \
        DOCKER_RUN_ARGS="--network none $extra"
}

check() {
    local t bw
    say "image: itertl:cpu, $(image_size itertl:cpu); user $("$DOCKER" image inspect -f '{{.Config.User}}' itertl:cpu)"
    bw='bwrap --unshare-all --die-with-parent --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib
        --symlink usr/lib64 /lib64 --dev /dev --tmpfs /tmp /bin/true'
    # shellcheck disable=SC2046,SC2086  # the options are words
    "$DOCKER" run --rm --network none --user 10001:10001 $(security_options) --entrypoint bwrap itertl:cpu \
        ${bw#bwrap } || die "bubblewrap does not run inside the container with DOCKER_SECURITY's options"
    say "bubblewrap runs inside the container (DOCKER_SECURITY options, uid 10001)"

    t=$SECONDS
    in_image "" docker-eval MODEL=reference BENCH=verilog-eval-v1-human FAIL_UNDER=1 RUN="ci-selfcheck-$(date +%s)" \
        | tee "$STATE/selfcheck.log" | tail -n 15
    echo "selfcheck_s=$((SECONDS - t))" >>"$STATE/figures"
    say "v1 Human reference self-check inside the image: $((SECONDS - t)) s"

    t=$SECONDS
    in_image "" docker-test | tee "$STATE/suite.log" | tail -n 8
    echo "suite_s=$((SECONDS - t))" >>"$STATE/figures"
    say "default test suite inside the image (uid 10001, offline): $((SECONDS - t)) s"

    check_stop
}

# `docker stop` of a running `make docker-train` must return within 2 s and leave no process behind.
check_stop() {
    local name=$NAME_PREFIX-stop pids t0 ms
    "$DOCKER" rm -f "$name" >/dev/null 2>&1 || true
    in_image "--name $name" docker-train PRESET=tiny-cpu RUN="ci-stop-$(date +%s)" >"$STATE/stop.log" 2>&1 &
    local make_pid=$!
    for _ in $(seq 180); do
        "$DOCKER" top "$name" -eo pid,args 2>/dev/null | grep -q 'harness train' && break
        sleep 1
    done
    "$DOCKER" top "$name" -eo pid,args 2>/dev/null | grep -q 'harness train' \
        || { cat "$STATE/stop.log" >&2; die "make docker-train did not start training within 180 s"; }
    pids=$("$DOCKER" top "$name" -eo pid | tail -n +2 | tr '\n' ' ')
    t0=$(date +%s%N)
    "$DOCKER" stop "$name" >/dev/null
    ms=$((($(date +%s%N) - t0) / 1000000))
    wait "$make_pid" || true
    local left=""
    for pid in $pids; do [[ -d /proc/$pid ]] && left+=" $pid"; done
    echo "stop_ms=$ms" >>"$STATE/figures"
    [[ -z $left ]] || die "processes left after docker stop:$left"
    ((ms < 2000)) || die "docker stop took $ms ms (limit 2000)"
    say "docker stop of a running make docker-train: $ms ms, none of its $(wc -w <<<"$pids") processes left"
}

case ${1:-all} in
    build) build ;;
    check) check ;;
    check-stop) check_stop ;;
    stop-engine) stop_engine ;;
    all) trap stop_engine EXIT; build; check ;;
    *) die "usage: docker/ci.sh build|check|check-stop|stop-engine|all" ;;
esac
