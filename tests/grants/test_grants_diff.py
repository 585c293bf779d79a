"""The diff as a property: applying its changes to any current state yields the desired state on
everything the product manages, and leaves everything else exactly as it was."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.grants.diff import diff
from pdp.grants.model import Current, Desired, Securable, State
from pdp.grants.snowflake import SnowflakeDialect

DIALECT = SnowflakeDialect()
OBJECTS = [Securable("TABLE", ("D", "S", t), "TABLE") for t in "abc"]
CONTAINERS = [Securable("DATABASE", ("D",), "DATABASE"), Securable("SCHEMA", ("D", "S"), "SCHEMA")]
ROLES = ["PDP_USER_A", "PDP_USER_B"]
THEIRS = ["OWNERSHIP", "REFERENCES", "MONITOR"]


def states(extra: list[str]) -> st.SearchStrategy[State]:
    """Per object, privileges from what the dialect manages there plus `extra`."""

    def held(securable: Securable) -> st.SearchStrategy[frozenset[str]]:
        choices = sorted(DIALECT.managed(securable)) + extra
        return st.frozensets(st.sampled_from(choices), min_size=1)

    objects = st.sampled_from(OBJECTS + CONTAINERS).flatmap(
        lambda s: st.tuples(st.just(s), held(s))
    )
    per_role = st.lists(objects, max_size=4).map(dict)
    return st.dictionaries(st.sampled_from(ROLES), per_role, max_size=2)


@settings(max_examples=200)
@given(states([]), states(THEIRS))
def test_applying_the_diff_converges_and_spares_what_is_not_ours(want: State, have: State) -> None:
    desired = Desired("r", want, frozenset(ROLES))
    changes = diff(desired, Current(have), DIALECT)
    after = {p: dict(objects) for p, objects in have.items()}
    for change in changes:
        assert not change.add & change.remove
        held = after.setdefault(change.principal, {}).get(change.securable, frozenset())
        assert change.remove <= held  # never revokes what is not there
        after[change.principal][change.securable] = (held - change.remove) | change.add
    for role in ROLES:
        for securable in OBJECTS + CONTAINERS:
            got = after.get(role, {}).get(securable, frozenset())
            before = have.get(role, {}).get(securable, frozenset())
            managed = DIALECT.managed(securable)
            assert got & managed == want.get(role, {}).get(securable, frozenset()) & managed
            assert got - managed == before - managed  # OWNERSHIP, REFERENCES untouched
    converged = Current({p: {s: v for s, v in o.items() if v} for p, o in after.items()})
    assert diff(desired, converged, DIALECT) == []
