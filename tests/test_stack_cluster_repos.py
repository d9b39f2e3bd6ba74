"""Where a stack-built cluster keeps the sample app's repository (``StackCluster.shared_repos``): a folder of
the shared /tmp named after the cluster's VPC, made afresh for each new cluster."""

from __future__ import annotations

import tempfile

from skynet_tasks.local.network import Vpc
from skynet_tasks.local.stack_cluster import StackCluster


def test_a_new_cluster_does_not_inherit_the_sample_app_a_killed_cluster_of_its_vpc_left(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # tempfile.gettempdir()'s answer
    left = tmp_path / "skynet-skytest-repos" / "repos" / "sample-app.git"
    left.mkdir(parents=True)
    (left / "HEAD").write_text("ref: refs/heads/main\n")  # a killed cluster's repository, its last commits in it
    cluster = StackCluster(tmp_path / "cluster")
    cluster._vpc = Vpc("skytest", "10.250.0.0/16")  # the VPC name it claimed, free again

    shared = cluster.shared_repos()

    assert shared == tmp_path / "skynet-skytest-repos"
    assert list(shared.iterdir()) == []  # the sample app is created anew in it
    assert shared.stat().st_mode & 0o777 == 0o755  # readable by the instances' users
