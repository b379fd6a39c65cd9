#!/usr/bin/env bash
# Prepare, here (with network), the two ignored folders that tools/device/gpu_check.sh needs on a lent
# GPU machine without network; name both in the device run's `carry`: [".whl", ".devtools"].
#   .whl/       Python 3.12 manylinux x86_64 wheels missing from (or too old on) the machine's image.
#               transformers and peft travel because the image's transformers 5.17 returns no
#               hidden_states for output_hidden_states=[-1] (harness/objective/logprobs.py needs a newer one);
#               bitsandbytes is slimmed to its CPU and CUDA 13.x libraries (the image's torch is cu130).
#   .devtools/  iverilog-12/: a stripped copy of `make tools`' .tools/iverilog-12 (run `make tools` first);
#               deb/: Debian's bubblewrap, libreadline8, libtinfo6 and libcap2 (unpacked there under /tmp).
# Idempotent: files already there are kept. Both folders are added to .git/info/exclude.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
WHEELS=(trl==1.16.0 bitsandbytes==0.50.2 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 pyslang==12.1.0
        nanobind-backend==1.0.0 transformers==5.24.0 peft==0.21.2)
DEBS=(bubblewrap libreadline8 libtinfo6 libcap2)

exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
for p in /.whl/ /.devtools/; do grep -qxF "$p" "$exclude" 2>/dev/null || echo "$p" >> "$exclude"; done

mkdir -p .whl
for spec in "${WHEELS[@]}"; do
    name=${spec%%==*}; version=${spec##*==}
    compgen -G ".whl/${name//-/_}-$version-*.whl" >/dev/null && continue
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d .whl "$spec"
done
python3 - <<'EOF'
import glob, os, re, zipfile
drop = re.compile(r"bitsandbytes/libbitsandbytes_(cuda1[0-2]\d|rocm\d+|xpu\d+)\.so$")
for src in glob.glob(".whl/bitsandbytes-*.whl"):
    with zipfile.ZipFile(src) as z:
        if not any(drop.search(n) for n in z.namelist()):
            continue
        with zipfile.ZipFile(src + ".slim", "w", zipfile.ZIP_DEFLATED) as out:
            for info in z.infolist():
                if drop.search(info.filename):
                    continue
                data = z.read(info.filename)
                if info.filename.endswith(".dist-info/RECORD"):
                    data = b"".join(l for l in data.splitlines(True) if not drop.search(l.split(b",")[0].decode()))
                out.writestr(info, data)
    os.replace(src + ".slim", src)
EOF

src=.tools/iverilog-12
[[ -x $src/bin/iverilog ]] || { echo "error: $src not built: run make tools first" >&2; exit 2; }
if [[ ! -x .devtools/iverilog-12/bin/iverilog ]]; then
    mkdir -p .devtools && cp -a "$src" .devtools/iverilog-12
    rm -rf .devtools/iverilog-12/include .devtools/iverilog-12/lib/*.a
    find .devtools/iverilog-12 -type f | while read -r f; do
        [[ $(head -c 4 "$f" | od -An -c | tr -d ' ') == 177ELF ]] && strip --strip-unneeded "$f"
    done
fi
mkdir -p .devtools/deb
for pkg in "${DEBS[@]}"; do
    compgen -G ".devtools/deb/${pkg}_*.deb" >/dev/null || (cd .devtools/deb && apt-get download "$pkg")
done
du -sh .whl .devtools
