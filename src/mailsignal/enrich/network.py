"""Network facts for a hit's IP: which known networks hold it (namespace `net`).

Facts: `valid`, `ip_version`, `private`, `labels` (sorted; every list whose prefix holds
the address, nested prefixes included) and `owner` (vendor of the most specific prefix).
`country` and `city` are added only when a MaxMind-format database is configured and the
optional `maxminddb` package is importable.

The lists are plain CIDR files under `mailsignal/data/net/`, mapped to labels by
`lists.toml`; `refresh.py` writes validated overrides to `<data_dir>/net/<name>.txt`.
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Protocol

import pytricia

from mailsignal.errors import ConfigError
from mailsignal.model import NETWORK_FACTS, RawHit

_log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (network, labels, owner): one row of one list, as Networks takes it.
Entry = tuple[str | IPNetwork, Iterable[str], str | None]


def bundled_net_dir() -> Traversable:
    return files("mailsignal").joinpath("data", "net")


@dataclass(frozen=True, slots=True)
class ListSpec:
    """One entry of `data/net/lists.toml`."""

    name: str
    labels: tuple[str, ...]
    owner: str | None
    source: str
    date: str
    licence: str
    feed: str


def read_manifest() -> dict[str, ListSpec]:
    """The bundled list manifest, in file order (most specific lists first)."""
    raw = tomllib.loads(bundled_net_dir().joinpath("lists.toml").read_text("utf-8"))
    specs: dict[str, ListSpec] = {}
    for name, entry in raw["lists"].items():
        specs[name] = ListSpec(
            name=name,
            labels=tuple(entry["labels"]),
            owner=entry.get("owner"),
            source=entry["source"],
            date=entry["date"],
            licence=entry["licence"],
            feed=entry.get("feed", ""),
        )
    return specs


@dataclass(frozen=True, slots=True)
class Match:
    """What the table knows about one address: flattened over every enclosing prefix."""

    labels: tuple[str, ...]
    owner: str | None


class Networks:
    """Longest-prefix-match table from CIDR to labels, one pytricia trie per IP version.

    pytricia measured 3.2 M lookups/s against 400 k for ipaddress+bisect (noise-signals.md)
    and handles nested prefixes, which bisect over sorted ranges does not. Labels of every
    enclosing prefix are folded into each prefix once, at build time, so a lookup is one
    trie probe instead of a walk up the parents.
    """

    def __init__(self, entries: Iterable[Entry]) -> None:
        merged: dict[IPNetwork, tuple[set[str], str | None]] = {}
        for cidr, labels, owner in entries:
            # strict: a host-bits-set prefix is almost always a typo, and pytricia would
            # silently truncate it (it even accepts "1.2.3.4/33").
            net = cidr if not isinstance(cidr, str) else ipaddress.ip_network(cidr)
            if net in merged:
                have, first_owner = merged[net]
                have.update(labels)
                # The first list to name a prefix keeps it: the manifest lists specific first.
                merged[net] = (have, first_owner or owner)
            else:
                merged[net] = (set(labels), owner)
        self._v4 = pytricia.PyTricia(32)
        self._v6 = pytricia.PyTricia(128)
        shared: dict[Match, Match] = {}  # one object per distinct fact set keeps RSS small
        # Shorter prefixes first, so each insert finds its already-folded parent.
        for net in sorted(merged, key=lambda n: (n.version, n.prefixlen)):
            labels, owner = merged[net]
            trie = self._v4 if net.version == 4 else self._v6
            key = str(net)
            parent: Match | None = trie.get(key)
            if parent is not None:
                labels = labels | set(parent.labels)
                owner = owner if owner is not None else parent.owner
            match = Match(tuple(sorted(labels)), owner)
            trie[key] = shared.setdefault(match, match)
        self._count = len(merged)

    def __len__(self) -> int:
        return self._count

    def lookup(self, ip: IPAddress, text: str | None = None) -> Match | None:
        """Facts for `ip`, or None when no list holds it.

        `text` is the same address as a string that `ipaddress` already accepted; when
        given, pytricia probes with it instead (a str probe costs a fifth of an object one).
        """
        trie = self._v4 if ip.version == 4 else self._v6
        match: Match | None = trie.get(text if text is not None else ip)
        return match

    def lookup_text(self, version: int, text: str) -> Match | None:
        """`lookup` for an address given only as text, in a form `DOTTED_QUAD` or
        `FULL_IPV6` matched (pytricia parses those exactly as `ipaddress` does)."""
        match: Match | None = (self._v4 if version == 4 else self._v6).get(text)
        return match


# "Private" as the classifier needs it: the client is on a local or carrier-NAT network,
# so the IP says nothing about who fetched (often: a proxy whose X-Forwarded-For is not
# trusted). Explicit rather than ipaddress.is_private, which also counts documentation
# ranges, changed between Python releases, and costs 2 µs a call (more than the parse).
PRIVATE_RANGES = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",  # RFC 6598 shared address space (carrier-grade NAT)
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::/128",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
)
_PRIVATE = Networks((cidr, ("private",), None) for cidr in PRIVATE_RANGES)

# Addresses in the two forms clients nearly always send skip `ipaddress`, whose parse is
# most of a lookup (an IPv6 one in pure Python: 80%), and go to the tries as text; any
# other text takes the full path. Both give the same facts (tests/enrich compares them).
# - IPv4 exactly as `ipaddress.IPv4Address` accepts it: four decimal octets of 0-255,
#   ASCII digits, no leading zeros.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
# - IPv6 written out in full: eight groups of 1-4 hex digits, no "::", no embedded IPv4,
#   no zone. One whose first group is zero is left to the full path, as it may be an
#   IPv4-mapped address (::ffff:a.b.c.d in full) that must be looked up as IPv4.
FULL_IPV6 = re.compile(r"[1-9a-fA-F][0-9a-fA-F]{0,3}(?::[0-9a-fA-F]{1,4}){7}")


def read_cidr_file(path: Path | Traversable) -> list[IPNetwork]:
    """Parse one list file: a CIDR (or bare address) per line, `#` starts a comment."""
    nets: list[IPNetwork] = []
    for lineno, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            nets.append(ipaddress.ip_network(text))
        except ValueError as exc:
            raise ConfigError(
                f"{path} line {lineno}: {text!r} is not a network ({exc})",
                detail={"file": str(path), "line": lineno},
            ) from exc
    return nets


def load_networks(data_dir: Path | None = None) -> Networks:
    """Build the table from every manifest list, preferring `<data_dir>/net/<name>.txt`."""
    bundled = bundled_net_dir()
    entries: list[Entry] = []
    for spec in read_manifest().values():
        path: Path | Traversable = bundled.joinpath(f"{spec.name}.txt")
        if data_dir is not None and (override := data_dir / "net" / f"{spec.name}.txt").is_file():
            path = override
        entries.extend((net, spec.labels, spec.owner) for net in read_cidr_file(path))
    return Networks(entries)


class GeoReader(Protocol):
    """What we use of `maxminddb.Reader`; tests hand in a dict-backed fake."""

    def get(self, ip_address: str, /) -> Any: ...


def open_geo(mmdb_path: Path) -> GeoReader | None:
    """Open a MaxMind-format database if the optional `maxminddb` package is installed.

    Geo is optional and low value (proxies dominate opens), so a missing package logs a
    warning and enrichment carries on without country/city instead of refusing to start.
    """
    try:
        maxminddb = importlib.import_module("maxminddb")
    except ImportError:
        _log.warning("geo database %s configured but maxminddb is not installed", mmdb_path)
        return None
    if not mmdb_path.is_file():
        raise ConfigError(f"geo database {mmdb_path} does not exist")
    reader: GeoReader = maxminddb.open_database(str(mmdb_path))
    return reader


def _geo_lookup(geo: GeoReader, address: str) -> dict[str, str | None]:
    try:
        record = geo.get(address)
    except ValueError:  # maxminddb: an IPv6 address asked of an IPv4-only database
        record = None
    return _geo_facts(record)


def _geo_facts(record: Any) -> dict[str, str | None]:
    # GeoLite2/DB-IP layout: {"country": {"iso_code"}, "city": {"names": {"en"}}}.
    country = city = None
    if isinstance(record, Mapping):
        country = (record.get("country") or {}).get("iso_code")
        city = ((record.get("city") or {}).get("names") or {}).get("en")
    return {"country": country, "city": city}


class NetworkEnricher:
    """Enricher for the `net` namespace. Never raises on a bad IP: `valid` says so.

    Not cached: with the fast paths a lookup costs about what a cache hit and a copy of
    the cached facts would, and a cache of 10k addresses, most of them seen once (people's
    own connections), only gave the garbage collector more to walk (bench/classify_pure.py).
    """

    namespace = "net"
    # Declared in model.py so the classifier can default to them (it may not import us).
    provides = NETWORK_FACTS

    def __init__(self, networks: Networks, geo: GeoReader | None = None) -> None:
        self.networks = networks
        self.geo = geo

    def enrich(self, hit: RawHit) -> dict[str, Any]:
        return self.describe(hit.ip)

    def describe(self, ip: str) -> dict[str, Any]:
        text = ip.strip()
        if DOTTED_QUAD.fullmatch(text):
            version = 4
        elif self.geo is None and FULL_IPV6.fullmatch(text):  # geo wants the short form
            version = 6
        else:
            return self._describe_parsed(text)
        match = self.networks.lookup_text(version, text)
        facts: dict[str, Any] = {
            "valid": True,
            "ip_version": version,
            "labels": list(match.labels) if match else [],
            "owner": match.owner if match else None,
            "private": _PRIVATE.lookup_text(version, text) is not None,
        }
        if self.geo is not None:  # IPv4 only: its text is already str(IPv4Address(text))
            facts.update(_geo_lookup(self.geo, text))
        return facts

    def _describe_parsed(self, text: str) -> dict[str, Any]:
        """The full path: any text, parsed by `ipaddress`."""
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:  # also catches "1.2.3.0/24" and "01.2.3.4"
            facts: dict[str, Any] = {
                "valid": False,
                "ip_version": None,
                "labels": [],
                "owner": None,
                "private": False,
            }
            if self.geo is not None:
                facts.update(country=None, city=None)
            return facts
        key: str | None = text
        # A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; the lists are v4.
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr, key = addr.ipv4_mapped, None
        elif "%" in text:  # scoped fe80::1%eth0: pytricia cannot parse it
            key = None
        match = self.networks.lookup(addr, key)
        facts = {
            "valid": True,
            "ip_version": addr.version,
            "labels": list(match.labels) if match else [],
            "owner": match.owner if match else None,
            "private": _PRIVATE.lookup(addr, key) is not None,
        }
        if self.geo is not None:
            facts.update(_geo_lookup(self.geo, str(addr)))
        return facts
