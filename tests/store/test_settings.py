"""Effective isActive / activateNewChildren by inheritance, and the 100,000-descendant rule."""

import pytest

from pdp.objects import (
    DESCENDANT_LIMIT,
    Node,
    ObjectPath,
    Origin,
    RemoteState,
    TooManyDescendants,
    check_enable_limit,
    effective_settings,
    new_child_override,
)
from pdp.objects.syncplan import Listing, RemoteObject

CONNECTION, DATABASE, SCHEMA, TABLE = (
    ObjectPath.of("hc"),
    ObjectPath.of("hc", "hold"),
    ObjectPath.of("hc", "hold", "sales"),
    ObjectPath.of("hc", "hold", "sales", "orders"),
)
MISSING, UNKNOWN = RemoteState.MISSING, RemoteState.UNKNOWN


def chain(*overrides, states=()):
    """One (isActive, activateNewChildren) pair per level, connection first."""
    paths = (CONNECTION, DATABASE, SCHEMA, TABLE)
    states = tuple(states) + (RemoteState.PRESENT,) * (len(overrides) - len(states))
    return [
        Node(path, active, new, state)
        for path, (active, new), state in zip(paths, overrides, states, strict=False)
    ]


# isActive overrides (connection, database, schema, table) -> (effective, inherited from)
ACTIVE_TABLE = [
    ((None, None, None, None), False, "default"),
    ((True, None, None, None), True, "hc"),
    ((False, None, None, None), False, "hc"),
    ((True, False, None, None), False, "hc/hold"),
    ((False, True, None, None), True, "hc/hold"),
    ((None, None, True, None), True, "hc/hold/sales"),
    ((True, None, None, False), False, "hc/hold/sales/orders"),
    ((False, None, False, True), True, "hc/hold/sales/orders"),
    ((True, True, True, True), True, "hc/hold/sales/orders"),
    ((None, True, False, None), False, "hc/hold/sales"),
]


@pytest.mark.parametrize(("overrides", "active", "source"), ACTIVE_TABLE)
def test_is_active_is_the_nearest_override(overrides, active, source):
    settings = effective_settings(chain(*((o, None) for o in overrides)))
    assert settings.is_active.value is active
    assert settings.is_active.inherited_from == source
    expected = Origin.DEFAULT if source == "default" else Origin.OVERRIDE
    assert settings.is_active.origin is expected


@pytest.mark.parametrize(("overrides", "value", "source"), ACTIVE_TABLE)
def test_activate_new_children_inherits_the_same_way(overrides, value, source):
    settings = effective_settings(chain(*((None, o) for o in overrides)))
    assert settings.activate_new_children.value is value
    assert settings.activate_new_children.inherited_from == source


def test_the_two_settings_are_independent():
    settings = effective_settings(chain((True, None), (None, True)))
    assert (settings.is_active.value, settings.is_active.inherited_from) == (True, "hc")
    assert settings.activate_new_children.inherited_from == "hc/hold"


@pytest.mark.parametrize(
    ("states", "active", "origin", "source"),
    [
        ((None, None, None, MISSING), False, Origin.MISSING, "hc/hold/sales/orders"),
        ((None, MISSING, MISSING, MISSING), False, Origin.MISSING, "hc/hold"),
        ((None, None, None, UNKNOWN), True, Origin.OVERRIDE, "hc/hold/sales/orders"),
        ((None, None, UNKNOWN, None), True, Origin.OVERRIDE, "hc/hold/sales/orders"),
    ],
)
def test_missing_disables_whatever_the_overrides_say(states, active, origin, source):
    nodes = chain((True, None), (True, None), (True, None), (True, None), states=states)
    settings = effective_settings(nodes)
    assert (settings.is_active.value, settings.is_active.origin) == (active, origin)
    assert settings.is_active.inherited_from == source


def test_missing_keeps_activate_new_children():
    nodes = chain((None, True), (None, None), states=(None, MISSING))
    assert effective_settings(nodes).activate_new_children.value is True


# parent (isActive, activateNewChildren) effective -> override a discovered child gets
@pytest.mark.parametrize(
    ("parent", "override", "child_active"),
    [
        ((None, None), None, False),  # defaults: inactive, inherits inactive
        ((True, None), False, False),  # active parent, new children inactive by default
        ((True, True), None, True),  # active parent, activate new: inherit active
        ((False, True), True, True),  # inactive parent, activate new: explicit active
        ((None, True), True, True),
        ((True, False), False, False),
        ((False, False), None, False),
    ],
)
def test_status_of_a_discovered_child(parent, override, child_active):
    parent_settings = effective_settings(chain(parent))
    assert new_child_override(parent_settings) is override
    child = effective_settings([*chain(parent), Node(DATABASE, override, None)])
    assert child.is_active.value is child_active


@pytest.mark.parametrize(
    ("path", "descendants", "was", "will", "refused"),
    [
        (CONNECTION, DESCENDANT_LIMIT, False, True, True),
        (DATABASE, DESCENDANT_LIMIT, False, True, True),
        (DATABASE, DESCENDANT_LIMIT + 5, False, True, True),
        (DATABASE, DESCENDANT_LIMIT - 1, False, True, False),
        (SCHEMA, DESCENDANT_LIMIT * 3, False, True, False),  # schemas whatever their size
        (DATABASE, DESCENDANT_LIMIT, True, False, False),  # disabling is never limited
        (DATABASE, DESCENDANT_LIMIT, False, False, False),
        (DATABASE, DESCENDANT_LIMIT, True, True, False),  # already active: not enabling
        (TABLE, 0, False, True, False),
    ],
)
def test_descendant_limit(path, descendants, was, will, refused):
    if refused:
        with pytest.raises(TooManyDescendants) as error:
            check_enable_limit(path, descendants, was, will)
        assert error.value.field == "isActive"
        assert error.value.value == path.url
    else:
        check_enable_limit(path, descendants, was, will)


def test_a_bounded_descendant_count_stops_at_its_bound(store):
    with store.write() as tx:
        tx.register_connection("hc", "trino", activate_new_children=True)
    with store.write() as tx:
        tx.sync(
            "hc",
            [
                Listing((), (RemoteObject("db"),)),
                Listing(("db",), tuple(RemoteObject(f"s{n}") for n in range(5))),
            ],
        )
    with store.read() as reader:
        assert reader.descendant_count(ObjectPath("hc")) == 6
        assert reader.descendant_count(ObjectPath("hc"), at_most=3) == 3
        assert reader.descendant_count(ObjectPath("hc"), at_most=100) == 6
