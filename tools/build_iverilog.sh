#!/usr/bin/env bash
# Make Icarus Verilog 12.0 available to itertl (called by `make tools`).
#
# VerilogEval's reference testbenches need iverilog 12: 11.x mis-simulates a few of them
# (review2015_fancytimer, review2015_fsm), so every pass@k would be off. Order:
#   0. $ITERTL_TOOLS_DIR/iverilog is 12.x -> use it (find_tool looks there first);
#   1. <prefix>/bin/iverilog already built by this script for this prefix and source -> no-op;
#   2. `iverilog -V` on PATH is 12.x -> use it, build nothing;
#   3. else build 12.0 from the pinned source archive into <prefix> (default <repo>/.tools/iverilog-12).
# verilog_tools.tools.find_tool looks in $ITERTL_TOOLS_DIR, then <repo>/.tools/iverilog-12/bin, then
# PATH, so nobody needs to edit PATH.
#
# Source: upstream's v12_0 tag archive from GitHub, or, where GitHub cannot be reached, Debian's
# iverilog_12.0.orig.tar.gz (source package iverilog 12.0-2, trixie). Both are the same file: Debian's
# Sources index (trixie, signed) lists this sha256 for the orig tarball, and Homebrew's and Spack's
# recipes pin the same sha256 for the GitHub URL. Any archive whose sha256 differs is rejected.
#
# Build: dependencies via apt only when missing; configure + make in-tree in a temp dir outside the repo,
# `make install DESTDIR=<staging>`, a compile-and-simulate smoke test of the staged copy, then a
# rename into place (same filesystem), so a killed build never leaves a half-installed prefix.
#
# Environment: ITERTL_IVERILOG_PREFIX (install prefix), JOBS (make -j, default nproc),
# ITERTL_DEBIAN_MIRROR (default: the first Debian mirror in the apt sources, else deb.debian.org).
set -euo pipefail

readonly VERSION=12.0
readonly SHA256=a68cb1ef7c017ef090ebedb2bc3e39ef90ecc70a3400afb4aa94303bc3beaa7d
readonly GITHUB_URL=https://github.com/steveicarus/iverilog/archive/refs/tags/v12_0.tar.gz
readonly DEBIAN_POOL_PATH=pool/main/i/iverilog/iverilog_12.0.orig.tar.gz
readonly BUILD_DEPS=(gperf bison flex autoconf g++ make zlib1g-dev libbz2-dev)

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix=${ITERTL_IVERILOG_PREFIX:-$repo/.tools/iverilog-12}
cache_dir=$repo/.cache/tools
stamp_text="iverilog $VERSION sha256=$SHA256 prefix=$prefix"

say() { echo "tools: $*"; }
die() { echo "error: $*" >&2; exit 2; }

version_line() {  # version_line IVERILOG_BINARY -> the first line of `-V` (no pipe: under pipefail,
    local out        # `-V | head -n 1` can kill iverilog with SIGPIPE and fail)
    out=$("$1" -V 2>/dev/null) || true
    echo "${out%%$'\n'*}"
}

is_v12() {  # is_v12 IVERILOG_BINARY -> success when `-V` reports 12.x
    [[ $(version_line "$1") =~ ^Icarus\ Verilog\ version\ 12\. ]]
}

debian_mirror() {
    if [[ -n ${ITERTL_DEBIAN_MIRROR:-} ]]; then echo "$ITERTL_DEBIAN_MIRROR"; return; fi
    local uri  # first active "URIs:" (deb822) or "deb" line ending in /debian; comments skipped
    uri=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
          | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n 1 || true)
    uri=${uri%% }
    echo "${uri%/}"
}

as_root() {
    if [[ $(id -u) == 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root to run: $* (install these packages, then rerun make tools)"
    fi
}

install_build_deps() {
    local missing=() pkg
    for pkg in "${BUILD_DEPS[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
    done
    [[ ${#missing[@]} == 0 ]] && return
    command -v apt-get >/dev/null || die "missing build tools (${missing[*]}) and no apt-get; install them and rerun make tools"
    say "installing build dependencies: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

fetch_source() {  # prints the path of a verified archive
    local archive=$cache_dir/iverilog-$VERSION.tar.gz url
    mkdir -p "$cache_dir"
    if [[ -f $archive ]] && echo "$SHA256  $archive" | sha256sum --check --status; then
        echo "$archive"; return
    fi
    local mirror
    mirror=$(debian_mirror)
    [[ $mirror == http://deb.debian.org/debian ]] && mirror=""  # tried below anyway
    for url in "$GITHUB_URL" ${mirror:+"$mirror/$DEBIAN_POOL_PATH"} "http://deb.debian.org/debian/$DEBIAN_POOL_PATH"; do
        say "downloading $url" >&2
        if curl -fsSL --connect-timeout 15 --max-time 300 -o "$archive.part" "$url"; then
            if echo "$SHA256  $archive.part" | sha256sum --check --status; then
                mv "$archive.part" "$archive"; echo "$archive"; return
            fi
            say "sha256 mismatch for $url (want $SHA256); not used" >&2
        fi
        rm -f "$archive.part"
    done
    die "could not download a verified iverilog $VERSION archive; put one with sha256 $SHA256 at $archive"
}

smoke_test() {  # smoke_test ROOT: compile and simulate a tiny testbench with ROOT/bin/{iverilog,vvp}
    local root=$1 dir out
    dir=$(mktemp -d)
    cat >"$dir/tb.v" <<'EOF'
module tb;
  reg [3:0] a = 4'd5;
  initial begin
    #1 a = a + 4'd7;
    $display("sum=%0d", a);
  end
endmodule
EOF
    "$root/bin/iverilog" -g2012 -B "$root/lib/ivl" -o "$dir/tb.vvp" "$dir/tb.v"
    out=$("$root/bin/vvp" -n -M "$root/lib/ivl" "$dir/tb.vvp")
    rm -rf "$dir"
    [[ $out == *"sum=12"* ]] || die "smoke test of $root failed: vvp printed '$out'"
}

build_into_prefix() {
    local archive=$1 work stage parent old
    parent=$(dirname "$prefix")
    mkdir -p "$parent"
    work=$(mktemp -d "${TMPDIR:-/tmp}/itertl-iverilog.XXXXXX")
    stage=$(mktemp -d "$parent/.iverilog-stage.XXXXXX")  # same filesystem as $prefix: rename is atomic
    trap 'rm -rf "$work" "$stage"' EXIT
    tar -xzf "$archive" -C "$work"
    (cd "$work/iverilog-12_0" && sh autoconf.sh >/dev/null)
    say "building iverilog $VERSION in $work (JOBS=${JOBS:-$(nproc)}; a few minutes)"
    # Called from `make tools`: the caller's MAKEFLAGS (--no-builtin-rules, ...) must not reach
    # iverilog's own Makefiles, which rely on make's built-in %.o: %.c rule (ivlpp does).
    unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
    # In-tree, as upstream documents; a failed parallel make is retried serially before giving up.
    (cd "$work/iverilog-12_0" && ./configure --prefix="$prefix" >configure.log \
        && { make -j"${JOBS:-$(nproc)}" >make.log 2>&1 || make >make-serial.log 2>&1; } \
        && make install DESTDIR="$stage" >install.log 2>&1) \
        || { trap 'rm -rf "$stage"' EXIT; die "iverilog build failed; logs in $work/iverilog-12_0"; }
    smoke_test "$stage$prefix"
    echo "$stamp_text" >"$stage$prefix/.itertl-stamp"
    old=""
    if [[ -e $prefix ]]; then old=$(mktemp -d "$parent/.iverilog-old.XXXXXX"); mv "$prefix" "$old/"; fi
    mv "$stage$prefix" "$prefix"
    rm -rf "$work" "$stage" ${old:+"$old"}
    trap - EXIT
}

main() {
    if [[ -n ${ITERTL_TOOLS_DIR:-} && -x $ITERTL_TOOLS_DIR/iverilog ]] && is_v12 "$ITERTL_TOOLS_DIR/iverilog"; then
        say "using \$ITERTL_TOOLS_DIR/iverilog: $(version_line "$ITERTL_TOOLS_DIR/iverilog")"
        return
    elif [[ -x $prefix/bin/iverilog && "$(cat "$prefix/.itertl-stamp" 2>/dev/null)" == "$stamp_text" ]] \
        && is_v12 "$prefix/bin/iverilog"; then
        say "iverilog $VERSION already built in $prefix"
    elif command -v iverilog >/dev/null && is_v12 "$(command -v iverilog)"; then
        say "using $(command -v iverilog) from PATH: $(version_line "$(command -v iverilog)")"
        return
    else
        mkdir -p "$(dirname "$prefix")"
        exec 9>"$(dirname "$prefix")/.iverilog-build.lock"
        flock 9  # a second `make tools` waits for the first instead of building twice
        if ! [[ -x $prefix/bin/iverilog && "$(cat "$prefix/.itertl-stamp" 2>/dev/null)" == "$stamp_text" ]]; then
            local archive
            archive=$(fetch_source)  # first: a bad download fails before apt touches the system
            install_build_deps
            build_into_prefix "$archive"
        fi
    fi
    say "iverilog in use: $prefix/bin/iverilog ($(version_line "$prefix/bin/iverilog"))"
}

main "$@"
