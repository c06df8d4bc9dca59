"""A node's URL, however spelled, names one node: duplicates are refused before a master starts."""

from __future__ import annotations

import pytest

from replog.config import MasterConfig
from replog.core.urls import duplicate_nodes, node_key


@pytest.mark.parametrize(
    "spellings",
    [
        ["http://h:1", "http://h:1/", "HTTP://H:1", " http://h:1// "],
        ["http://s1", "http://s1:80", "http://S1:80/"],
        ["https://s1", "https://s1:443"],
        ["http://[::1]:8001", "http://[0:0::1]:8001/"],
        ["http://s1.example:8000", "http://s1.example.:8000"],
        ["http://h:1/base", "http://h:1/base/"],
    ],
)
def test_spellings_of_one_node_have_one_key(spellings: list[str]) -> None:
    assert len({node_key(url) for url in spellings}) == 1


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("http://h:1", "http://h:2"),
        ("http://h:1", "https://h:1"),
        ("http://a:1", "http://b:1"),
        ("http://h:1/a", "http://h:1/b"),
    ],
)
def test_different_nodes_have_different_keys(a: str, b: str) -> None:
    assert node_key(a) != node_key(b)


@pytest.mark.parametrize(
    "bad",
    ["s1:8000", "ftp://h:1", "http://", "http://h:99999", "http://h:x", "http://u:p@h:1", "http://h:1/?q=1"],
)
def test_a_url_that_names_no_node_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        node_key(bad)


def test_duplicates_are_paired_with_the_first_spelling() -> None:
    urls = ["http://a:1", "http://b:1", "http://A:1/", "http://b:1"]
    assert duplicate_nodes(urls) == [("http://a:1", "http://A:1/"), ("http://b:1", "http://b:1")]


def test_a_master_refuses_a_secondary_listed_twice() -> None:
    """w=3 was acknowledged by two nodes: the same secondary counted twice."""
    with pytest.raises(ValueError, match=r"listed twice.*'http://s1:8000/' is 'http://s1:8000'"):
        MasterConfig(secondaries=("http://s1:8000", "http://s2:8000", "http://s1:8000/"))


def test_urls_are_kept_as_given() -> None:
    assert MasterConfig(secondaries=("HTTP://S1:8000/", "http://s2")).secondaries == (
        "HTTP://S1:8000/",
        "http://s2",
    )
