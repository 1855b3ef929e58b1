"""A copy's mail environment from its address and its machine events' network facts."""

from __future__ import annotations

import pytest

from helpers import APPLE_RELAY_IP, EOP_IP
from mailsignal.enrich.network import NetworkEnricher, load_networks
from mailsignal.environments import NONE_SEEN, name, of_copy

_NETWORKS = NetworkEnricher(load_networks())


def _net(ip: str) -> dict[str, object]:
    """The facts the pipeline stores for a hit from `ip` (the bundled, real lists)."""
    return {"net": _NETWORKS.describe(ip)}


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("sam@gmail.com", "gmail"),
        ("Sam@GoogleMail.com", "gmail"),
        ("kim@hotmail.com", "outlook-com"),
        ("lee@icloud.com", "icloud"),
        ("ana@web.de", "gmx-webde"),
    ],
)
def test_a_consumer_domain_decides(address: str, expected: str) -> None:
    # Even when a gateway's network fetched the copy (forwarding through one).
    assert of_copy(address, [_net(EOP_IP)]) == expected


def test_the_first_gateway_of_real_networks_names_the_environment() -> None:
    assert of_copy("dana@contoso.test", [_net(APPLE_RELAY_IP), _net(EOP_IP)]) == "microsoft"
    assert name("microsoft") == "Microsoft 365 (Safe Links)"


def test_apple_relay_other_scanners_and_nothing() -> None:
    assert of_copy("dana@contoso.test", [_net(APPLE_RELAY_IP)]) == "apple-mpp"
    assert of_copy("dana@contoso.test", [_net("198.51.100.7")]) == "other-scanner"
    assert of_copy("dana@contoso.test", [{"net": {"error": "x"}}, {}]) == "other-scanner"
    assert of_copy("dana@contoso.test", []) is None
    assert name(None) == NONE_SEEN
    assert name("new-vendor") == "New vendor"
