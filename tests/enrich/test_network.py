"""Networks / NetworkEnricher on real addresses inside and just outside the bundled lists."""

from __future__ import annotations

import ipaddress
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mailsignal.enrich import network
from mailsignal.enrich.network import (
    NetworkEnricher,
    Networks,
    load_networks,
    open_geo,
    read_cidr_file,
    read_manifest,
)
from mailsignal.errors import ConfigError

NET_DIR = Path(network.__file__).parents[1] / "data" / "net"
README = Path(network.__file__).parents[1] / "data" / "README.md"

VENDORS = {
    "apple-private-relay", "microsoft-eop", "microsoft-365-protection", "microsoft", "google",
    "googlebot", "bing", "amazon", "oracle", "digitalocean", "linode", "vultr", "hetzner", "ovh",
    "cloudflare", "facebook", "twitter", "telegram", "proofpoint", "mimecast", "barracuda",
    "cisco-ironport", "trend-micro", "sophos", "forcepoint", "zscaler", "symantec",
    "check-point", "fortinet", "palo-alto",
}  # fmt: skip
GROUPS = {"datacenter", "security-gateway", "scanner-clicks-only"}
EOP = ["microsoft", "microsoft-365-protection", "microsoft-eop"]
MS = ["microsoft", "scanner-clicks-only"]


@pytest.fixture(scope="module")
def enricher() -> NetworkEnricher:
    return NetworkEnricher(load_networks())


@pytest.mark.parametrize(
    ("ip", "labels", "owner"),
    [
        # Apple Private Relay: a bare-address line, and its unlisted neighbour.
        ("104.28.28.76", ["apple-private-relay"], "apple"),
        ("104.28.28.77", [], None),
        ("2606:54c0::1", ["apple-private-relay"], "apple"),
        ("2606:54bf:ffff::1", [], None),
        # Exchange Online Protection 40.107.0.0/16, inside Azure's 40.64.0.0/10.
        ("40.107.255.255", [*EOP, "scanner-clicks-only", "security-gateway"], "microsoft"),
        ("40.108.0.0", MS, "microsoft"),
        ("52.100.0.1", [*EOP, "scanner-clicks-only", "security-gateway"], "microsoft"),
        ("2a01:111:f403:ffff::1", [*EOP, "scanner-clicks-only", "security-gateway"], "microsoft"),
        ("2a01:111:f401::1", MS, "microsoft"),
        # Safe Links detonation seen from 40.94.x: Microsoft, but not EOP.
        ("40.94.16.5", MS, "microsoft"),
        # warmbly's extra /32, not in Microsoft's EOP set.
        ("52.238.78.88", ["microsoft", "microsoft-365-protection", "scanner-clicks-only",
                          "security-gateway"], "microsoft"),
        ("52.238.78.89", MS, "microsoft"),
        # Barracuda EGD 3.24.133.128/25 sits in AWS 3.16.0.0/12: the /25 names the owner.
        ("3.24.133.128", ["amazon", "barracuda", "datacenter", "security-gateway"], "barracuda"),
        ("3.24.133.127", ["amazon", "datacenter"], "amazon"),
        ("209.222.82.1", ["barracuda", "security-gateway"], "barracuda"),
        ("148.163.128.1", ["proofpoint", "security-gateway"], "proofpoint"),
        ("148.163.127.255", [], None),
        ("165.225.0.1", ["zscaler"], "zscaler"),
        ("5.9.0.1", ["datacenter", "hetzner"], "hetzner"),
        ("8.8.8.8", ["google", "scanner-clicks-only"], "google"),
        ("2001:4860:4801:2::1", ["google", "googlebot", "scanner-clicks-only"], "google"),
        ("2001:4860:4801:3::1", ["google", "scanner-clicks-only"], "google"),
        ("13.66.139.5", ["bing", "microsoft", "scanner-clicks-only"], "microsoft"),
        ("31.13.64.1", ["facebook"], "facebook"),
        ("2a03:2880::1", ["facebook"], "facebook"),
        ("91.108.4.1", ["telegram"], "telegram"),
        # Apple corporate 17/8 is not MPP egress (noise-signals.md).
        ("17.0.0.1", [], None),
    ],
)  # fmt: skip
def test_real_addresses(enricher: NetworkEnricher, ip: str, labels: list[str], owner: str) -> None:
    facts = enricher.describe(ip)
    assert facts["labels"] == labels
    assert facts["owner"] == owner
    assert facts["valid"] is True
    assert facts["private"] is False
    assert facts["ip_version"] == ipaddress.ip_address(ip).version


@pytest.mark.parametrize("ip", ["10.0.0.1", "172.31.255.255", "192.168.1.1", "127.0.0.1",
                                "169.254.1.1", "100.64.0.1", "0.0.0.0", "::1", "fe80::1",
                                "fe80::1%eth0", "fd00::1", "::ffff:192.168.1.1"])  # fmt: skip
def test_private_addresses(enricher: NetworkEnricher, ip: str) -> None:
    facts = enricher.describe(ip)
    assert (facts["valid"], facts["private"], facts["labels"], facts["owner"]) == (
        True,
        True,
        [],
        None,
    )


@pytest.mark.parametrize("ip", ["", "garbage", "1.2.3.4.5", "256.1.1.1", "40.107.0.0/16",
                                "2a01:111:f400::zz", "01.2.3.4"])  # fmt: skip
def test_invalid_addresses_never_raise(enricher: NetworkEnricher, ip: str) -> None:
    assert enricher.describe(ip) == {
        "valid": False,
        "ip_version": None,
        "labels": [],
        "owner": None,
        "private": False,
    }


def test_documentation_ranges_carry_no_labels(enricher: NetworkEnricher) -> None:
    # Vultr's geofeed lists these; the bundled copy drops them so test traffic stays clean.
    for ip in ("192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1"):
        assert enricher.describe(ip)["labels"] == []
        # Not "private" either: private means a local or carrier-NAT client, nothing else.
        assert enricher.describe(ip)["private"] is False


@pytest.mark.parametrize("ip", ["172.32.0.1", "100.128.0.1", "11.0.0.1", "fec0::1", "2a00::1"])
def test_just_outside_private_ranges(enricher: NetworkEnricher, ip: str) -> None:
    assert enricher.describe(ip)["private"] is False


def test_ipv4_mapped_ipv6_is_looked_up_as_ipv4(enricher: NetworkEnricher) -> None:
    facts = enricher.describe("::ffff:104.28.28.76")
    assert (facts["ip_version"], facts["labels"]) == (4, ["apple-private-relay"])


def test_whitespace_around_the_address_is_tolerated(enricher: NetworkEnricher) -> None:
    assert enricher.describe(" 104.28.28.76\n")["labels"] == ["apple-private-relay"]


def test_nested_prefixes_fold_labels_and_the_longest_names_the_owner() -> None:
    table = Networks(
        [
            ("10.0.0.0/8", ["outer"], "big"),
            ("10.1.0.0/16", ["middle"], "mid"),
            ("10.1.2.0/24", ["inner"], None),
            ("10.1.0.0/16", ["same-prefix"], "second"),  # same prefix, later list
            ("2001:db8::/32", ["six"], "v6"),
        ]
    )
    assert len(table) == 4

    def at(ip: str) -> tuple[tuple[str, ...], str | None] | None:
        match = table.lookup(ipaddress.ip_address(ip))
        return (match.labels, match.owner) if match else None

    assert at("10.9.9.9") == (("outer",), "big")
    assert at("10.1.9.9") == (("middle", "outer", "same-prefix"), "mid")
    # A list without an owner inherits the enclosing prefix's owner.
    assert at("10.1.2.3") == (("inner", "middle", "outer", "same-prefix"), "mid")
    assert at("11.0.0.1") is None
    assert at("2001:db8::1") == (("six",), "v6")
    # The v4 trie does not answer for v6 and the reverse.
    assert at("::10.1.2.3") is None


def test_prefix_with_host_bits_is_refused() -> None:
    # pytricia alone would accept it (and even 1.2.3.4/33): validation is ours.
    with pytest.raises(ValueError):
        Networks([("10.0.0.1/8", ["x"], None)])


def test_bad_line_in_a_list_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("# header\n10.0.0.0/8\n\n10.0.0.0/33  # oops\n")
    with pytest.raises(ConfigError, match="line 4"):
        read_cidr_file(path)


def test_data_dir_override_replaces_one_list(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "apple-private-relay.txt").write_text("# mine\n100.100.0.0/16\n")
    enricher = NetworkEnricher(load_networks(tmp_path))
    assert enricher.describe("100.100.1.1")["labels"] == ["apple-private-relay"]
    assert enricher.describe("104.28.28.76")["labels"] == []
    # Other lists still come from the bundle.
    assert "microsoft-eop" in enricher.describe("40.107.0.1")["labels"]


def test_missing_data_dir_falls_back_to_bundle(tmp_path: Path) -> None:
    enricher = NetworkEnricher(load_networks(tmp_path / "absent"))
    assert enricher.describe("104.28.28.76")["labels"] == ["apple-private-relay"]


class FakeGeo:
    def __init__(self, records: dict[str, Any]) -> None:
        self.records = records

    def get(self, ip_address: str, /) -> Any:
        if ":" in ip_address and "ipv4-only" in self.records:
            # what maxminddb.Reader.get does for IPv6 in an IPv4-only database
            raise ValueError("You attempted to look up an IPv6 address in an IPv4-only database")
        return self.records.get(ip_address)


def test_geo_facts_come_from_the_reader_when_configured() -> None:
    geo = FakeGeo(
        {
            "104.28.28.76": {"country": {"iso_code": "DE"}, "city": {"names": {"en": "Berlin"}}},
            "8.8.8.8": {"country": {"iso_code": "US"}},  # a country-only database
        }
    )
    enricher = NetworkEnricher(load_networks(), geo=geo)
    assert enricher.describe("104.28.28.76")["country"] == "DE"
    assert enricher.describe("104.28.28.76")["city"] == "Berlin"
    assert (enricher.describe("8.8.8.8")["country"], enricher.describe("8.8.8.8")["city"]) == (
        "US",
        None,
    )
    assert enricher.describe("10.0.0.1")["country"] is None
    assert enricher.describe("garbage")["city"] is None


def test_geo_failure_costs_the_geo_facts_only() -> None:
    enricher = NetworkEnricher(load_networks(), geo=FakeGeo({"ipv4-only": True}))
    facts = enricher.describe("2a01:111:f400::1")
    assert (facts["country"], facts["city"]) == (None, None)
    assert "microsoft-eop" in facts["labels"]


def test_geo_keys_are_absent_without_a_database(enricher: NetworkEnricher) -> None:
    assert "country" not in enricher.describe("8.8.8.8")
    assert "city" not in enricher.describe("8.8.8.8")


def test_missing_maxminddb_means_no_geo_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A None entry in sys.modules makes `import maxminddb` raise ImportError, installed or not.
    monkeypatch.setitem(sys.modules, "maxminddb", None)
    assert open_geo(tmp_path / "GeoLite2-City.mmdb") is None
    assert "maxminddb is not installed" in caplog.text


def test_every_manifest_list_has_an_attributed_file() -> None:
    specs = read_manifest()
    files = {p.stem for p in NET_DIR.glob("*.txt") if not p.name.startswith("LICENSE")}
    assert set(specs) == files
    for name in specs:
        head = [ln for ln in (NET_DIR / f"{name}.txt").read_text().splitlines() if ln[:1] == "#"]
        text = "\n".join(head)
        for key in ("source:", "date:", "licence:"):
            assert re.search(rf"^# {key}", text, re.M), f"{name}.txt lacks '# {key}'"


def test_manifest_labels_use_the_documented_vocabulary() -> None:
    raw = tomllib.loads((NET_DIR / "lists.toml").read_text())
    used = {label for entry in raw["lists"].values() for label in entry["labels"]}
    assert used <= VENDORS | GROUPS
    assert used == VENDORS | GROUPS  # and every documented label is produced by some list
    readme = README.read_text()
    for label in sorted(VENDORS | GROUPS):
        assert f"`{label}`" in readme, f"label {label} is not documented in data/README.md"


def test_licences_are_shipped_beside_the_data() -> None:
    assert "CC0 1.0 Universal" in (NET_DIR / "LICENSE-CC0.txt").read_text()
    assert "Copyright (c) 2023 hroost" in (NET_DIR / "LICENSE-MIT-hroost.txt").read_text()
    licences = {spec.licence for spec in read_manifest().values()}
    assert {"MIT", "CC0-1.0", "CC-BY-SA-4.0", "Apache-2.0"} <= licences


def test_every_bundled_prefix_is_public_and_canonical() -> None:
    for name in read_manifest():
        for net in read_cidr_file(NET_DIR / f"{name}.txt"):
            assert net.is_global, f"{name}: {net} is not public address space"


def test_bundled_table_size(enricher: NetworkEnricher) -> None:
    # ~21.7k prefixes today; a collapse to a handful means a list failed to load.
    assert 20_000 < len(enricher.networks) < 40_000
