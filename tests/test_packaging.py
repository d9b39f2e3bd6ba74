"""The wheel an instance installs: what it carries, what it requires, and that it runs on the base install alone.

The wheel is built offline from a copy of this tree and installed with ``--no-deps``
into a fresh venv. Beside it go only the distributions its base ``Requires-Dist``
pulls in (linked from the environment running the tests, so nothing is downloaded):
moto, flask, gunicorn and cfn-lint are as absent there as on an EC2 instance.
"""

from __future__ import annotations

import email.parser
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parent.parent
# What the build reads; tests/, benchmarks/ and the venv stay out of the copy.
SOURCES = ("pyproject.toml", "README.md", "celeryconfig.py", "skynet_tasks", "workers", "cloudformation")
TEMPLATE = "skynet_tasks/cloudformation/php-nginx.yaml"
# packaging: skynet stack deploy resolves the wheel's requirements to pack the webhook's Lambda code.
BASE = {"celery", "kombu", "boto3", "gitpython", "jinja2", "click", "pyyaml", "packaging", "python-json-logger"}


@dataclass(frozen=True)
class Installed:
    wheel: Path
    metadata: Message
    venv: Path

    def run(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        return subprocess.run([str(self.venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=environment,
                              capture_output=True, text=True, timeout=60, check=False)


def build_wheel(tmp: Path) -> Path:
    source = tmp / "src"
    source.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            # symlinks=True: the build sees skynet_tasks/cloudformation as a checkout has it, a link.
            shutil.copytree(path, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    out = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(out), str(source)], check=True, timeout=90)
    [wheel] = out.glob("skynet-*.whl")
    return wheel


def read_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


def requirements(message: Message, extra: str | None) -> list[Requirement]:
    """The Requires-Dist of the base install (``extra=None``) or of one extra, without the other extras'."""
    found = []
    for line in message.get_all("Requires-Dist", []):
        requirement = Requirement(line)
        in_base = requirement.marker is None or requirement.marker.evaluate({"extra": ""})
        if (in_base and extra is None) or (extra is not None and not in_base
                                            and requirement.marker is not None
                                            and requirement.marker.evaluate({"extra": extra})):
            found.append(requirement)
    return found


def base_closure(roots: list[Requirement]) -> list[metadata.Distribution]:
    """The distributions of this environment that ``roots`` pull in, with their extras, recursively."""
    seen: dict[str, set[str]] = {}
    todo = [(canonicalize_name(r.name), set(r.extras)) for r in roots]
    while todo:
        name, extras = todo.pop()
        if name in seen and extras <= seen[name]:
            continue
        seen[name] = seen.get(name, set()) | extras
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": e}) for e in ("", *seen[name]))
            if wanted:
                todo.append((canonicalize_name(requirement.name), set(requirement.extras)))
    return [metadata.distribution(name) for name in seen]


def link_distributions(distributions: list[metadata.Distribution], site_packages: Path) -> None:
    """Make ``distributions`` importable in ``site_packages`` by linking their top-level files and folders."""
    for distribution in distributions:
        origin = Path(str(distribution.locate_file("")))
        for entry in distribution.files or []:
            top = entry.parts[0]
            if top == ".." or top.endswith(".pth") or (site_packages / top).exists():
                continue  # console scripts live outside site-packages; .pth files would run the test env's hooks
            (site_packages / top).symlink_to(origin / top)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    tmp = tmp_path_factory.mktemp("packaging")
    wheel = build_wheel(tmp)
    message = read_metadata(wheel)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    [site_packages] = (venv / "lib").glob("python3*/site-packages")
    link_distributions(base_closure(requirements(message, None)), site_packages)
    # Without PYTHONPATH: a checkout on it (its skynet.egg-info) would read as skynet installed already.
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                    "--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)], check=True, timeout=90,
                   env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    yield Installed(wheel, message, venv)


def test_the_wheel_carries_the_cloudformation_templates_as_they_are_in_the_repository(installed):
    with zipfile.ZipFile(installed.wheel) as archive:
        assert archive.read(TEMPLATE) == (REPO / "cloudformation" / "php-nginx.yaml").read_bytes()


def test_the_base_install_requires_only_what_the_workers_run(installed):
    base = {canonicalize_name(r.name) for r in requirements(installed.metadata, None)}

    assert base == BASE
    everything = {canonicalize_name(Requirement(line).name) for line in installed.metadata.get_all("Requires-Dist")}
    assert "waitress" not in everything


@pytest.mark.parametrize(("extra", "brings"), [
    ("webhook", {"gunicorn"}),
    ("dashboard", {"flask", "prometheus-client", "gunicorn"}),
    ("stack", {"cfn-lint"}),
    ("local", {"moto", "skynet"}),
    ("test", {"skynet", "pytest", "setuptools", "wheel"}),
])
def test_each_extra_brings_what_its_commands_need(installed, extra, brings):
    found = {canonicalize_name(r.name): r for r in requirements(installed.metadata, extra)}

    assert brings <= set(found)
    if extra == "local":
        assert "server" in found["moto"].extras
        assert {"dashboard", "webhook", "stack"} <= found["skynet"].extras
    if extra == "test":
        assert found["skynet"].extras == {"local", "grafana"}


def test_skynet_version_is_the_wheels_version(installed, tmp_path):
    result = installed.run("skynet", "--version", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"skynet, version {installed.metadata['Version']}"


def test_stack_render_reads_the_template_installed_with_the_wheel(installed, tmp_path):
    where = installed.run("python", "-c", "import skynet_tasks.stacks.cfn as c; print(c.TEMPLATES)", cwd=tmp_path)
    result = installed.run("skynet", "stack", "render", "--param", "Env=staging", cwd=tmp_path)

    assert Path(where.stdout.strip()).is_relative_to(installed.venv), where.stdout + where.stderr
    assert result.returncode == 0, result.stderr
    rendered = json.loads(result.stdout)
    assert rendered["Parameters"]["Env"]["Default"] == "staging"
    assert "LaunchTemplate" in {resource["Type"].split("::")[-1] for resource in rendered["Resources"].values()}


def test_the_worker_path_imports_with_the_base_install_alone(installed, tmp_path):
    probe = installed.run("python", "-c", "import celeryconfig, skynet_tasks.tasks, workers.launch, workers.lifecycle",
                          cwd=tmp_path)
    help_text = installed.run("skynet", "worker", "--help", cwd=tmp_path)

    assert probe.returncode == 0, probe.stderr
    assert help_text.returncode == 0 and "Usage: skynet worker" in help_text.stdout, help_text.stderr


@pytest.mark.parametrize(("command", "extra"), [
    (("monitor", "serve", "--env", "prod"), "dashboard"),
    (("webhook", "serve", "--env", "prod"), "webhook"),
    (("stack", "validate"), "stack"),
    (("local", "up", "--dir", "cluster"), "local"),
    (("demo", "--dir", "cluster"), "local"),
])
def test_a_command_whose_extra_is_missing_names_the_extra_to_install(installed, tmp_path, command, extra):
    result = installed.run("skynet", *command, cwd=tmp_path)

    assert result.returncode == 1
    assert f"needs the {extra} extra: pip install 'skynet[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cluster").exists()
