"""Connection key rules: 1-128 letters, digits, '-', '_'; not a reserved word."""

import pytest

from pdp.objects import RESERVED_KEYS, InvalidKey, check_connection_key, key_identity


@pytest.mark.parametrize("key", ["hc", "a", "Trino_Prod-1", "x" * 128, "0", "-", "_"])
def test_accepted(key):
    assert check_connection_key(key) == key


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("", "must not be empty"),
        ("x" * 129, "at most 128 characters, not 129"),
        ("my key", "found ' '"),
        ("hc.prod", "found '.'"),
        ("hc/prod", "found '/'"),
        ("café", "found 'é'"),
        ("\uff48\uff43", "letters, digits"),
        (None, "must be a string"),
        (42, "must be a string"),
    ],
)
def test_refused_with_the_rule_it_breaks(key, says):
    with pytest.raises(InvalidKey) as refused:
        check_connection_key(key)
    assert refused.value.field == "connectionKey"
    assert refused.value.value == key
    assert says in str(refused.value)


@pytest.mark.parametrize("word", sorted(RESERVED_KEYS))
def test_every_reserved_word_is_refused_in_any_case(word):
    for spelling in (word, word.upper(), word.capitalize()):
        with pytest.raises(InvalidKey, match="reserved word"):
            check_connection_key(spelling)


def test_reserved_words_are_the_spec_list():
    spec = "data connection object crawl search settings metadata permission sync bulk upgrade"
    assert frozenset(spec.split()) == RESERVED_KEYS


def test_uniqueness_is_case_insensitive():
    assert key_identity("HC") == key_identity("hc")
    assert key_identity("hc") != key_identity("hc_")
