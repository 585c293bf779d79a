"""The snapshot's who-index finds exactly the policies a linear scan would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.core.model import Access
from pdp.policy import DataSource, Policy, PolicySnapshot, PolicyStatus, Subject, Technology

NAMES = st.sampled_from(["ann", "ben", "cy"])
GROUPS = st.frozensets(st.sampled_from(["g1", "g2", "g3"]), max_size=2)
ATTRS = st.dictionaries(
    st.sampled_from(["dept", "site"]),
    st.frozensets(st.sampled_from(["a", "b"]), min_size=1),
    max_size=2,
)
SOURCE = DataSource("c", Technology.TRINO, "db", "s", "t", trino_catalog="db")

policies = st.lists(
    st.builds(
        lambda n, anyone, users, groups, attrs, match_all, staged, access: Policy(
            name=f"p{n}",
            access=access,
            anyone=anyone,
            users=users,
            groups=groups,
            attributes=attrs,
            match_all=match_all,
            status=PolicyStatus.STAGED if staged else PolicyStatus.ACTIVE,
            data_sources=frozenset({"c.db.s.t"}),
        ),
        st.integers(),
        st.booleans(),
        st.frozensets(NAMES, max_size=2),
        GROUPS,
        ATTRS,
        st.booleans(),
        st.booleans(),
        st.sampled_from([Access.READ, Access.WRITE]),
    ),
    max_size=8,
    unique_by=lambda p: p.name,
)


@settings(max_examples=300, deadline=None)
@given(policies, NAMES, GROUPS, ATTRS)
def test_index_matches_a_linear_scan(policy_list, name, groups, attrs):
    snapshot = PolicySnapshot.compile("r", [SOURCE], policy_list, {})
    subject = Subject(name, groups, attrs)
    expected = tuple(
        p.name for p in policy_list if p.status is PolicyStatus.ACTIVE and p.applies_to(subject)
    )
    got = tuple(g.policy for g in snapshot.grants(subject).get("c.db.s.t", ()))
    assert got == expected
