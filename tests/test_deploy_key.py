"""A deploy key from the config bucket lets the build clone over SSH: a real sshd on loopback, real git.

Debian's openssh-server (installed by ``scripts/install-system-packages.sh``) runs
with its own config, host key and authorized_keys in the test's folder.
"""

from __future__ import annotations

import getpass
import socket
import subprocess
import time
from pathlib import Path

import git
import pytest

from skynet_tasks import gitrepo
from skynet_tasks.aws import aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.config.merge import merge
from skynet_tasks.config.sources import read_levels
from skynet_tasks.config.sync import ConfigDir, git_ssh_environment
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.resources import resolve

pytestmark = pytest.mark.timeout(120)

SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)


@pytest.fixture
def sshd(tmp_path: Path):
    assert SSHD.exists(), "openssh-server missing: run scripts/install-system-packages.sh"
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
    keygen(tmp_path / "host_key")
    keygen(tmp_path / "deploy_key")
    (tmp_path / "authorized_keys").write_text((tmp_path / "deploy_key.pub").read_text())
    port = free_port()
    config = tmp_path / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {tmp_path}/host_key
AuthorizedKeysFile {tmp_path}/authorized_keys
PidFile {tmp_path}/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
StrictModes no
""")
    process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stderr=open(tmp_path / "sshd.log", "wb"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield port, tmp_path / "deploy_key"
    process.terminate()
    process.wait(10)


def test_a_deploy_key_from_the_bucket_clones_a_private_repo_over_ssh(sshd, tmp_path):
    port, deploy_key = sshd
    # A "private" repository only reachable over SSH with the deploy key
    origin = git.Repo.init(tmp_path / "work", initial_branch="main")
    (tmp_path / "work" / "README").write_text("private\n")
    origin.index.add(["README"])
    sha = origin.index.commit("private commit").hexsha
    git.Repo.clone_from(tmp_path / "work", tmp_path / "private.git", bare=True)
    url = f"ssh://{getpass.getuser()}@127.0.0.1:{port}{tmp_path}/private.git"

    moto = MotoServer.start()
    try:
        aws = aws_for(moto.environment())
        resources = resolve(aws, "keys")
        bootstrap_env(aws, resources, ["keys-api"])
        aws.s3.put_object(Bucket=resources.config_bucket, Key="Global/deploy/github.pem", Body=deploy_key.read_bytes())
        config = ConfigDir(tmp_path / "etc" / "config")
        config.activate(config.write(merge(read_levels(aws.s3, aws.dynamodb, resources, "api"))))
    finally:
        moto.stop()
    environment = git_ssh_environment(config)

    # Without the key (same ssh options, no identity) the server refuses ...
    bare_ssh = environment["GIT_SSH_COMMAND"].split(" -i ")[0]
    with pytest.raises(gitrepo.GitError):
        gitrepo.checkout(url, "main", sha, tmp_path / "without-key", env={"GIT_SSH_COMMAND": bare_ssh})
    # ... with it, the build's checkout gets the commit.
    commit = gitrepo.checkout(url, "main", sha, tmp_path / "with-key", env=environment)

    assert commit.sha == sha
    assert (tmp_path / "with-key" / "README").read_text() == "private\n"
    assert (config.path / "ssh" / "github.pem").stat().st_mode & 0o777 == 0o600
    assert config.known_hosts.exists()  # the host key was pinned on first use
