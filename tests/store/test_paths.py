"""Object paths: URL segments with %2F, dotted names with \\. and \\\\ escapes."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdp.objects import InvalidPath, Kind, ObjectPath, format_dotted, parse_dotted
from pdp.objects.paths import parse_url_path

names = st.text(min_size=1, max_size=12)
segment_lists = st.lists(names, min_size=1, max_size=4)


@pytest.mark.parametrize(
    ("segments", "url", "dotted"),
    [
        (("hc",), "hc", "hc"),
        (("hc", "hold", "sales", "orders"), "hc/hold/sales/orders", "hc.hold.sales.orders"),
        (("hc", "hold", "sales/eu"), "hc/hold/sales%2Feu", "hc.hold.sales/eu"),
        (("hc", "hold", "v1.2"), "hc/hold/v1.2", "hc.hold.v1\\.2"),
        (("hc", "a\\b"), "hc/a%5Cb", "hc.a\\\\b"),
        (("hc", "a\\.b"), "hc/a%5C.b", "hc.a\\\\\\.b"),
        (("hc", "with space"), "hc/with%20space", "hc.with space"),
        (("hc", "%2F"), "hc/%252F", "hc.%2F"),
    ],
)
def test_spellings(segments, url, dotted):
    path = ObjectPath.of(*segments)
    assert path.url == url
    assert path.dotted == dotted
    assert ObjectPath.parse_url(url) == path
    assert ObjectPath.parse_dotted(dotted) == path


@given(segment_lists)
def test_url_round_trip(segments):
    path = ObjectPath.of(*segments)
    assert ObjectPath.parse_url(path.url) == path


@given(segment_lists)
def test_dotted_round_trip(segments):
    assert parse_dotted(format_dotted(segments)) == tuple(segments)


@pytest.mark.parametrize("text", ["", ".", "hc..x", "hc.", ".hc", "hc.a\\", "hc.a\\b", "a.b.c.d.e"])
def test_bad_dotted_names(text):
    with pytest.raises(InvalidPath) as refused:
        ObjectPath.parse_dotted(text)
    assert refused.value.field == "path"


@pytest.mark.parametrize("text", ["", "/", "hc//x", "a/b/c/d/e"])
def test_bad_url_paths(text):
    with pytest.raises(InvalidPath):
        ObjectPath.parse_url(text)


def test_leading_and_trailing_slashes_are_ignored():
    assert parse_url_path("/hc/hold/") == ("hc", "hold")


def test_kind_parent_child_and_ancestors():
    table = ObjectPath.of("hc", "hold", "sales", "orders")
    assert [p.kind for p in table.ancestors()] == [
        Kind.CONNECTION, Kind.DATABASE, Kind.SCHEMA, Kind.TABLE,
    ]  # fmt: skip
    assert table.parent == ObjectPath.of("hc", "hold", "sales")
    assert ObjectPath.of("hc").parent is None
    assert ObjectPath.of("hc", "hold").child("sales").kind is Kind.SCHEMA
    assert table.name == "orders"
    with pytest.raises(InvalidPath, match="at most a table"):
        table.child("column")
