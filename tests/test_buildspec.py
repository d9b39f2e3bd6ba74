"""``skynet.yml``: what a repository tells Skynet, read strictly.

The file comes from the repository being deployed, so it is trusted only as far as
the repository is: it can name commands, but it cannot make Skynet run a shell,
smuggle a second command through a newline, or set what Skynet does not know.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skynet_tasks.buildspec import BuildSpecError, load_buildspec, parse_buildspec

pytestmark = pytest.mark.timeout(10)

SAMPLE = Path(__file__).parent.parent / "skynet_tasks" / "local" / "sample_app" / "skynet.yml"


def test_the_sample_apps_spec_reads_as_documented():
    spec = load_buildspec(SAMPLE)

    assert spec.build == (("python3", "build.py"),)
    assert spec.service is not None and spec.service.command == ("python3", "app.py")
    assert spec.health is not None and spec.health.http == "/health" and spec.health.timeout == 15
    assert spec.update_timeout == 60


def test_a_string_command_is_split_like_a_shell_would_but_never_run_by_one():
    spec = parse_buildspec("build:\n  - make assets 'OUT=dist dir; rm -rf /' && echo done\n")

    # The metacharacters stay arguments of make: no shell ever sees them.
    assert spec.build == (("make", "assets", "OUT=dist dir; rm -rf /", "&&", "echo", "done"),)


def test_an_empty_file_means_no_build_steps_and_defaults():
    spec = parse_buildspec("")

    assert spec.build == () and spec.service is None and spec.update_timeout == 300


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(BuildSpecError, match="no skynet.yml at the repository root"):
        load_buildspec(tmp_path / "skynet.yml")


@pytest.mark.parametrize(("text", "message"), [
    ("build: [make\n", "not valid YAML at line"),
    ("- just\n- a list\n", "skynet.yml: expected a mapping"),
    ("biuld:\n  - [make]\n", "unknown key\\(s\\) biuld"),
    ("build: make\n", "build: expected a list of commands"),
    ("build:\n  - [make, 3]\n", "a command is a list of strings"),
    ("build:\n  - []\n", "empty command"),
    ("build:\n  - \"make 'unbalanced\"\n", "No closing quotation"),
    ("build:\n  - [\"make\", \"all\\nrm -rf /\"]\n", "NUL or newline"),
    ("hooks:\n  after_deploy: [[true]]\n", "hooks: unknown key\\(s\\) after_deploy"),
    ("service: {}\n", "service: a command is required"),
    ("health:\n  http: 'health check'\n", "health.http: expected a path"),
    ("update_timeout: 100000\n", "update_timeout: expected a number of seconds between 1 and 580"),
    ("update_timeout: true\n", "update_timeout: expected a number"),
    ("stack: ../../etc\n", "stack: a recipe name"),
    ("artifact:\n  exclude: node_modules\n", "artifact.exclude: expected a list"),
])
def test_a_malformed_spec_is_refused_with_a_message_that_points_at_the_problem(text, message):
    with pytest.raises(BuildSpecError, match=message):
        parse_buildspec(text)


def test_yaml_tags_that_would_build_python_objects_are_refused():
    with pytest.raises(BuildSpecError, match="not valid YAML"):
        parse_buildspec("build: !!python/object/apply:os.system ['touch /tmp/pwned']\n")
    assert not Path("/tmp/pwned").exists()
