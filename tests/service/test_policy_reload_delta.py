"""A policy file edited under a PDP without a store: the new revision is published with its
delta (computed where the files were loaded), and the loading reuses what did not change."""

from __future__ import annotations

import os

from devstack.configs import WORKED_POLICIES, make_tree
from pdp.policy import Revisions
from pdp.policy.delta import revision_delta
from pdp.service.config import load_pdp_config
from pdp.service.reload import first_policy, watch_policy


def test_an_edit_for_one_user_is_published_with_a_delta_naming_that_user(tmp_path):
    tree = make_tree(tmp_path)
    config = load_pdp_config(tree.pdp_yaml(0))
    first = first_policy(config)
    revisions = Revisions(first.loaded.value)
    watched = watch_policy(config, revisions, first)
    before = revisions.current
    policies = tree.policy_files[1]
    policies.write_text(WORKED_POLICIES.replace("users: [bob]", "users: [carol]"))
    os.utime(policies, ns=(1, 1))  # a new signature, whatever the clock's resolution
    assert watched.check()
    after = revisions.current
    assert after.revision != before.revision
    delta = revisions.delta_from(before.revision)
    assert delta is not None and delta == revision_delta(before, after)
    assert delta.users == {"bob", "carol"} and not delta.tables
    assert after.objects is before.objects  # the registry's file: not parsed, not compiled again
