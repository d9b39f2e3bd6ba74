"""The one pattern of a commit id, as the webhook, git and a stack recipe check it."""

from __future__ import annotations

import pytest

from skynet_tasks import names
from skynet_tasks.gitrepo import GitError
from skynet_tasks.gitrepo import check_sha as git_check_sha
from skynet_tasks.webhook.refnames import BadName
from skynet_tasks.webhook.refnames import check_sha as payload_check_sha

pytestmark = pytest.mark.timeout(10)

GOOD = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize("value", [GOOD + "\n", GOOD.upper(), GOOD[:39], GOOD + "8", " " + GOOD, GOOD[:-1] + "g", ""])
def test_a_commit_id_that_is_not_exactly_40_lowercase_hex_digits_is_refused_everywhere(value):
    assert not names.SHA.match(value)
    with pytest.raises(GitError):
        git_check_sha(value)
    with pytest.raises(BadName):
        payload_check_sha(value)


def test_a_full_commit_id_is_accepted_everywhere():
    assert names.SHA.match(GOOD)
    assert git_check_sha(GOOD) == payload_check_sha(GOOD) == GOOD
