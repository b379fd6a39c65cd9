#!/usr/bin/env bash
# `make gpu-check` on a bare, lent GPU machine without network (the workplace's device tool).
#
# Usage, from the repository root there:  bash tools/device/gpu_check.sh [RUN_NAME] 2>&1 | tee $OUT/log.txt
# It needs two ignored folders carried along with the working tree, prepared here beforehand:
#   .whl/       Python 3.12 manylinux wheels (see tools/device/prepare.sh, which makes both folders),
#               installed with --no-deps into /tmp/site, ahead of the image's packages on PYTHONPATH;
#   .devtools/  iverilog-12/ (a stripped copy of `make tools`' .tools/iverilog-12) and deb/ (Debian's
#               bubblewrap, libreadline8, libtinfo6, libcap2 .debs, unpacked under /tmp, never into /).
# Icarus has its install prefix compiled in (read from the binary; ITERTL_IVERILOG_PREFIX overrides), so
# the copy goes to that same path; a shared library or bwrap is copied into /usr only where absent.
# Containment stays bwrap when the project's own probe passes there, else ITERTL_CONTAINMENT=none
# (said in the log; the run records it). No `make`: its prerequisites (install, tools) need a network.
#
# Environment: OUT (where the run's small JSON files are copied; default /tmp/gpu-check-out),
# GPU_CHECK_TIMEOUT (seconds for the check itself, default 500), PYTHON (default python3),
# ITERTL_CONTAINMENT (set it to skip the probe). Exit status: the check's (124 when timed out).
set -uo pipefail

run=${1:-gpu-check-device}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo" || exit 2
out=${OUT:-/tmp/gpu-check-out}
mkdir -p "$out"
py=${PYTHON:-python3}
# Icarus finds its lib/ivl through the install prefix compiled into it: the copy must sit there.
compiled=$(grep -aoE '/[[:alnum:]/._+-]*/lib/ivl' .devtools/iverilog-12/bin/iverilog 2>/dev/null | head -n 1)
prefix=${ITERTL_IVERILOG_PREFIX:-${compiled:+${compiled%/lib/ivl}}}
prefix=${prefix:-/work/main/.tools/iverilog-12}
multiarch=/usr/lib/x86_64-linux-gnu
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

say() { echo "device: $*"; }

deb_unpacked() {  # deb_unpacked PACKAGE -> the folder its .deb is unpacked into (under /tmp)
    local dir=/tmp/devtools-deb/$1 deb
    if [[ ! -d $dir ]]; then
        deb=$(ls .devtools/deb/"$1"_*.deb 2>/dev/null | head -n 1)
        [[ -n $deb ]] || { say "no .devtools/deb/$1_*.deb"; return 1; }
        mkdir -p "$dir" && dpkg-deb -x "$deb" "$dir" || { say "dpkg-deb -x $deb failed"; return 1; }
    fi
    echo "$dir"
}

need_lib() {  # need_lib SONAME PACKAGE: copy the library into /usr/lib/<multiarch> when no copy is there
    local dir
    [[ -e $multiarch/$1 || -e /lib/x86_64-linux-gnu/$1 ]] && return 0
    dir=$(deb_unpacked "$2") || return 1
    cp -L "$(find "$dir" -name "$1" | head -n 1)" "$multiarch/$1" && say "added $multiarch/$1 (from $2)"
}

say "start $(date -u +%FT%TZ) in $repo"
nvidia-smi -L || say "nvidia-smi failed"
grep -h PRETTY_NAME /etc/os-release 2>/dev/null

# 1. Python packages the image lacks.
if compgen -G ".whl/*.whl" >/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { say "pip install of .whl failed"; exit 2; }
    export PYTHONPATH=/tmp/site:$repo${PYTHONPATH:+:$PYTHONPATH}
else
    say "no .whl folder: using the image's packages alone"
    export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}
fi

# 2. Icarus Verilog 12 at its compiled-in prefix, its libraries, bubblewrap.
if [[ ! -x $prefix/bin/iverilog && -d .devtools/iverilog-12 ]]; then
    mkdir -p "$(dirname "$prefix")" && cp -a .devtools/iverilog-12 "$prefix" && say "iverilog copied to $prefix"
fi
[[ -d $multiarch ]] || mkdir -p "$multiarch"
need_lib libtinfo.so.6 libtinfo6
need_lib libreadline.so.8 libreadline8
need_lib libcap.so.2 libcap2
if ! PATH=/usr/bin:/bin:/usr/local/bin command -v bwrap >/dev/null; then
    dir=$(deb_unpacked bubblewrap) && cp "$dir/usr/bin/bwrap" /usr/local/bin/bwrap && say "added /usr/local/bin/bwrap"
fi
export ITERTL_TOOLS_DIR=$prefix/bin
"$prefix/bin/iverilog" -V 2>&1 | head -n 1
"$prefix/bin/vvp" -V 2>&1 | head -n 1
if [[ -z ${ITERTL_CONTAINMENT:-} ]]; then
    if probe=$("$py" -c 'from verilog_tools.container import check_containment; print(check_containment())' 2>&1); then
        say "containment: $probe"
    else
        say "containment probe failed, running with ITERTL_CONTAINMENT=none: ${probe##*$'\n'}"
        export ITERTL_CONTAINMENT=none
    fi
fi

# 3. Versions (from metadata: a package that fails to import still shows), then the CUDA kernels.
"$py" - <<'EOF'
import sys
from importlib import metadata
print("python", sys.version.split()[0], sys.executable)
names = ["torch", "transformers", "accelerate", "peft", "trl", "bitsandbytes", "datasets", "huggingface-hub",
         "tokenizers", "safetensors", "pyarrow", "pandas", "fsspec", "dill", "multiprocess", "numpy", "pyslang",
         "vllm"]
for n in names:
    try:
        print(f"  {n} {metadata.version(n)}")
    except metadata.PackageNotFoundError:
        print(f"  {n} -")
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
try:
    import bitsandbytes as bnb
    lib = getattr(getattr(bnb.cextension, "lib", None), "_lib", None)
    print("bitsandbytes", bnb.__version__, getattr(bnb.cextension, "BNB_BACKEND", "?"), getattr(lib, "_name", lib))
except Exception as exc:
    print("bitsandbytes import failed:", type(exc).__name__, exc)
for mod in ("trl", "datasets", "pyslang", "verilog_tools.policy"):
    try:
        __import__(mod)
    except Exception as exc:
        print(f"{mod} import failed:", type(exc).__name__, exc)
EOF

# 4. The check itself (the Makefile's recipe, without its install/tools prerequisites).
say "gpu_check --run $run (timeout ${GPU_CHECK_TIMEOUT:-500} s)"
timeout -k 10 "${GPU_CHECK_TIMEOUT:-500}" "$py" -m harness.commands.gpu_check --run "$run"
rc=$?
say "gpu_check exit $rc at $(date -u +%FT%TZ)"
folder=${RESULTS_DIR:-results}/$run
for f in report.json stages.json child_stages.json config.json iter-01/train_log.json iter-01/eval/metrics.json; do
    [[ -f $folder/$f ]] && cp "$folder/$f" "$out/$(basename "$f")"
done
ls "$out"
exit $rc
