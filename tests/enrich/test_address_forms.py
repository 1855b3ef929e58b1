"""NetworkEnricher's fast paths give exactly the facts of the full path.

`describe` answers the address forms clients nearly always send without `ipaddress`
(DOTTED_QUAD, FULL_IPV6); `_describe_parsed` is the full path every other text takes.
They must agree on every input, key order included, with and without a geo database.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailsignal.enrich.network import DOTTED_QUAD, FULL_IPV6, NetworkEnricher, load_networks

NETWORKS = load_networks()


class EchoGeo:
    """A geo database that answers with the text it was asked, to see which text it got."""

    def get(self, ip_address: str, /) -> Any:
        if ip_address.startswith("8."):
            return None
        return {"country": {"iso_code": "ZZ"}, "city": {"names": {"en": ip_address}}}


PLAIN = NetworkEnricher(NETWORKS)
GEO = NetworkEnricher(NETWORKS, geo=EchoGeo())

# Addresses in and around the bundled lists (Apple relay, EOP, private, mapped, scoped).
KNOWN = [
    "104.28.28.76",
    "40.107.22.51",
    "10.1.2.3",
    "100.64.0.1",
    "127.0.0.1",
    "0.0.0.0",
    "255.255.255.255",
    "8.8.8.8",
    "2606:54c0::1",
    "2606:54c0:0:0:0:0:0:1",
    "2A01:111:F403:FFFF:0:0:0:1",
    "2a01:0111:f403:ffff:0000:0000:0000:0001",
    "fe80:0:0:0:0:0:0:1",
    "fe80::1%eth0",
    "::1",
    "0:0:0:0:0:0:0:1",
    "0:0:0:0:0:ffff:6a1c:1c4c",  # ::ffff:104.28.28.76 written out: must be looked up as v4
    "::ffff:104.28.28.76",
    "01.2.3.4",
    "1.2.3.04",
    "1.2.3.256",
    "1.2.3",
    "1.2.3.4.5",
    "1.2.3.0/24",
    " 104.28.28.76\n",
    "１.2.3.4",  # a full-width digit: not ASCII
    "1:2:3:4:5:6:7:8:9",
    "12345:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7:",
    "",
    "unknown",
]


def _same(text: str) -> None:
    for enricher in (PLAIN, GEO):
        fast, full = enricher.describe(text), enricher._describe_parsed(text.strip())
        assert list(fast.items()) == list(full.items()), text  # key order too: stored as JSON


@pytest.mark.parametrize("text", KNOWN)
def test_fast_paths_match_the_full_path_on_known_forms(text: str) -> None:
    _same(text)


def _v4_texts() -> st.SearchStrategy[str]:
    octet = st.one_of(
        st.integers(0, 255).map(str),
        st.integers(0, 999).map(lambda n: f"{n:03d}"),  # leading zeros, too big
        st.text("0123456789", min_size=0, max_size=4),
    )
    return st.lists(octet, min_size=3, max_size=5).map(".".join)


def _v6_texts() -> st.SearchStrategy[str]:
    address = st.ip_addresses(v=6)
    return st.one_of(
        address.map(lambda a: a.exploded),
        address.map(lambda a: a.exploded.upper()),
        address.map(str),
        st.lists(st.text("0123456789abcdefABCDEF", max_size=5), min_size=6, max_size=9).map(
            ":".join
        ),
    )


@settings(max_examples=600, deadline=None)
@given(st.one_of(_v4_texts(), _v6_texts(), st.ip_addresses(v=4).map(str), st.text(max_size=20)))
@example("0:0:0:0:0:ffff:102:304")
@example("ffff:0:0:0:0:0:0:0")
def test_fast_paths_match_the_full_path(text: str) -> None:
    _same(text)


def test_the_fast_paths_take_the_common_forms() -> None:
    assert DOTTED_QUAD.fullmatch("203.0.113.254")
    assert FULL_IPV6.fullmatch(ipaddress.ip_address("2a02:26f7::1").exploded)
    assert not FULL_IPV6.fullmatch("0000:0000:0000:0000:0000:ffff:6a1c:1c4c")
