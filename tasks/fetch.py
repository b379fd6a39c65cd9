"""Where the VerilogEval and RTLLM data come from: a local copy, the cache, or a pinned, hash-checked download.

RTLLM v2.0 (``rtllm-v2``: github.com/hkust-zhiyao/RTLLM, ``$RTLLM_V2_DIR``) follows the same three steps;
its pinned hash is one tree digest over the 157 files `tasks.rtllm` reads.

`dataset_dir(name)` resolves, in order:

1. ``$VERILOG_EVAL_V1_DIR`` / ``$VERILOG_EVAL_V2_DIR`` when set (a local checkout; its files are
   hash-checked and a mismatch only warns, so a patched copy stays usable);
2. the cache (``$ITERTL_CACHE`` or ``~/.cache/itertl``) when an earlier run fetched it;
3. a download of github.com/NVlabs/verilog-eval at the pinned commit (codeload tarball). Only the
   folders the loaders read are extracted; every file is checked against the pinned hashes below and
   the folder appears in the cache by one rename, so a half-finished fetch is never used.

Pinned hashes: v1 per file (sha256); v2 per task folder as a *tree digest*, the sha256 of the
``sha256sum``-style listing ``"<sha256>  <relpath>\\n"`` of every file the loader reads, sorted by
path (1,092 files would not fit in a readable table). Both were computed from the copies the project
was built against (see the data README).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from tasks import rtllm, verilog_eval
from verilog_tools.errors import UserError

TARBALL_URL = "https://codeload.github.com/{repo}/tar.gz/{commit}"


@dataclass(frozen=True)
class Dataset:
    """One pinned upstream snapshot."""

    name: str
    env_var: str
    commit: str
    folders: tuple[str, ...]   # top-level folders extracted from the tarball
    repo: str = "NVlabs/verilog-eval"


DATASETS = {
    "v1": Dataset("v1", "VERILOG_EVAL_V1_DIR", "4fa0ac4ed70ff1685114c25cd2e4c17cbba6a0c4",
                  ("data", "descriptions")),
    "v2": Dataset("v2", "VERILOG_EVAL_V2_DIR", "c498220d0a52248f8e3fdffe279075215bde2da6",
                  tuple(verilog_eval.V2_FOLDERS.values())),
    # RTLLM v2.0: hashed as one tree digest over every file tasks.rtllm reads (157 files).
    "rtllm-v2": Dataset("rtllm-v2", "RTLLM_V2_DIR", rtllm.COMMIT,
                        ("Arithmetic", "Control", "Memory", "Miscellaneous"), repo="hkust-zhiyao/RTLLM"),
}
RTLLM_V2_TREE_SHA256 = "fe0b73d188aef7116f46354af8c3574e6e26ae99beec0e25449e1e8355c51a0b"

V1_SHA256 = {
    "data/VerilogEval_Human.jsonl": "107f72c41e88478975887bdd3229b394ace139a84ba430f019220a5ee303b862",
    "data/VerilogEval_Machine.jsonl": "3070a6dce8ae5eeaaace0586b33074f54f132cb902b6b88acbc2fec2187af044",
    "descriptions/VerilogDescription_Human.jsonl":
        "4dfea61f03d353a60f6b7ead5ec21f6f9aff42487a57a50882137f68aa206274",
    "descriptions/VerilogDescription_Machine.jsonl":
        "4cb71de1821dad12b0a16c9b0daac5df27c0601c126e350a0afc46a457b8ade4",
    "data/example/ExampleEval.jsonl": "b2403817c1952a2ef504b084fcbc6bfa51abf9bfe03c0c414913fc348eb10e96",
    "data/example/ExampleSolution.jsonl": "dbab21ee5b6ef516c41facb3fce3a1cc12a4ccdff49cbfe8a26f92dffb3276ca",
    "data/example/ExampleDescriptions.jsonl":
        "27d10f6b73e370676c6f7ccfcebd7d0fd271b17457ca481cf8c0af637c4f508d",
}

V2_TREE_SHA256 = {
    "spec-to-rtl": "cab6faac4bb62b427089f96ad149b087c8d5cd851c63a0722054d3b527614888",
    "code-complete": "9886d8244d29d08747fc332d75debccdd5941d6efdce19f0f849eeefea681c15",
}

_verified: set[tuple[str, str]] = set()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(root: Path, relpaths: list[str]) -> str:
    """The sha256 of a ``sha256sum``-style listing of ``relpaths`` (sorted) under ``root``."""
    listing = "".join(f"{file_sha256(Path(root) / rel)}  {rel}\n" for rel in sorted(relpaths))
    return hashlib.sha256(listing.encode()).hexdigest()


def hash_mismatches(name: str, root: Path) -> list[str]:
    """What in ``root`` differs from the pinned hashes of dataset ``name`` (empty when all match)."""
    root = Path(root)
    problems: list[str] = []
    if name == "v1":
        for rel, want in V1_SHA256.items():
            path = root / rel
            if not path.is_file():
                problems.append(f"{rel} missing")
            elif file_sha256(path) != want:
                problems.append(f"{rel} differs")
        return problems
    if name == "rtllm-v2":
        files = rtllm.upstream_files(root)
        return [] if files and tree_sha256(root, files) == RTLLM_V2_TREE_SHA256 else ["design folders differ"]
    for kind, want in V2_TREE_SHA256.items():
        folder = root / verilog_eval.V2_FOLDERS[kind]
        if not folder.is_dir():
            problems.append(f"{folder.name}/ missing")
        elif tree_sha256(root, verilog_eval.v2_files(root, kind)) != want:
            problems.append(f"{folder.name}/ differs")
    return problems


def cache_root() -> Path:
    return Path(os.environ.get("ITERTL_CACHE") or Path.home() / ".cache" / "itertl")


def dataset_dir(name: str) -> Path:
    """The folder holding dataset ``name`` ("v1" or "v2"); fetches it if needed (see module doc)."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    ds = DATASETS[name]
    local = os.environ.get(ds.env_var)
    if local:
        root = Path(local)
        if not root.is_dir():
            raise UserError(f"{ds.env_var}={local} is not a directory; point it at a copy of "
                            f"{ds.repo} at commit {ds.commit}")
        _warn_on_mismatch(name, root)
        return root
    cached = cache_root() / (f"{name}-{ds.commit[:12]}" if name == "rtllm-v2" else f"verilog-eval-{name}-{ds.commit[:12]}")
    if cached.is_dir():
        return cached
    return fetch(ds, cached)


def _warn_on_mismatch(name: str, root: Path) -> None:
    key = (name, str(root.resolve()))
    if key in _verified:
        return
    _verified.add(key)
    bad = hash_mismatches(name, root)
    if bad:
        warnings.warn(f"{root} does not match {DATASETS[name].repo} ({name}) at the pinned commit "
                      f"({'; '.join(bad[:3])}); results may not be comparable", stacklevel=3)


def download(url: str, dest: Path) -> None:
    """Fetch ``url`` into ``dest`` (the only function here that touches the network)."""
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out)


def fetch(ds: Dataset, target: Path) -> Path:
    """Download ``ds``, extract its folders, check the hashes, and move it to ``target`` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    url = TARBALL_URL.format(repo=ds.repo, commit=ds.commit)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.tmp-") as tmp:
        tarball = Path(tmp) / "src.tar.gz"
        try:
            download(url, tarball)
        except OSError as exc:  # URLError, timeouts and refused connections are all OSErrors
            raise UserError(f"cannot download {ds.repo} ({ds.name}: {exc}); set {ds.env_var} to a "
                            f"local copy of {ds.repo} at commit {ds.commit}") from None
        staged = Path(tmp) / "tree"
        _extract(tarball, staged, ds.folders)
        bad = hash_mismatches(ds.name, staged)
        if bad:
            raise UserError(f"download of {ds.repo} ({ds.name}) failed its hash check "
                            f"({'; '.join(bad[:3])}); set {ds.env_var} to a verified local copy")
        try:
            os.rename(staged, target)
        except OSError:
            if not target.is_dir():  # someone else finished first: theirs is as good as ours
                raise
    return target


def _extract(tarball: Path, dest: Path, folders: tuple[str, ...]) -> None:
    """Extract ``folders`` of the tarball's single top directory into ``dest`` (safe paths only)."""
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            members = []
            for member in tar.getmembers():
                parts = member.name.split("/", 1)
                if len(parts) == 2 and parts[1].split("/", 1)[0] in folders and (member.isfile() or member.isdir()):
                    member.name = parts[1]
                    members.append(member)
            dest.mkdir()
            _extract_members(tar, dest, members)
    except (tarfile.TarError, EOFError) as exc:
        raise UserError(f"downloaded VerilogEval archive is unreadable ({exc}); retry or set a local copy "
                        f"via VERILOG_EVAL_V1_DIR / VERILOG_EVAL_V2_DIR") from None



def _extract_members(tar: tarfile.TarFile, dest: Path, members: list[tarfile.TarInfo]) -> None:
    """Extract regular files and directories with the "data" filter, or, on Python releases without
    tarfile filters (before 3.11.4 / 3.10.12, e.g. Debian bookworm's 3.11.2), with the same checks by hand:
    no absolute or escaping path, the filter's modes (files owner-writable, no setuid/setgid/sticky or
    group/other-write bits, directories 0o755), no ownership taken from the archive."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, members=members, filter="data")
        return
    root = dest.resolve()
    for member in members:
        if not (member.isfile() or member.isdir()):
            raise tarfile.TarError(f"{member.name}: not a regular file or directory")
        if os.path.isabs(member.name) or not (root / member.name).resolve().is_relative_to(root):
            raise tarfile.TarError(f"{member.name}: path outside the destination")
        if member.isdir():
            member.mode = 0o755
        else:
            member.mode = (member.mode & 0o755 if member.mode & 0o100 else member.mode & 0o644) | 0o600
        member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
    tar.extractall(dest, members=members)


def data_hash(problems) -> str:
    """A short content hash of a problem list, for manifests and metrics (order-independent)."""
    digest = hashlib.sha256()
    for p in sorted(problems, key=lambda p: p.task_id):
        row = [p.task_id, p.benchmark, p.description, p.header, p.reference, p.testbench, p.top,
               p.dut_module, p.completion_mode]
        if getattr(p, "data_files", None):  # files the testbench reads (RTLLM) count as its data too
            row.append({name: hashlib.sha256(data).hexdigest() for name, data in sorted(p.data_files.items())})
        digest.update(json.dumps(row, ensure_ascii=False).encode() + b"\n")
    return "sha256:" + digest.hexdigest()
