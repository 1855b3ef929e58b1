"""What the classifier compares of IP addresses, kept apart from the address itself.

Timeline rules compare the addresses of one recipient's events: the same address as a
honeypot hit (`near_honeypot`), three addresses in 30 s (`many_addresses`), a gateway's
address then another (`after_scanner_check`), another network than the first reading
(`new_device`: the first three octets of an IPv4 address, the whole of an IPv6 one).
With `ip_storage` truncated or none (issue 13) the stored address can no longer answer
those questions, so ingest, which still holds the full address, records two pseudonyms
among the event's facts (`facts["addr"]`):

- `host`: the address itself,
- `net`: the network `new_device` compares,

each a keyed BLAKE2b MAC (64 bits) under a key derived from the instance keyring and
scoped to the recipient copy (the delivery id): equal within one timeline exactly when the
addresses are, meaningless across copies (no linking of a person's events between mails),
and not reversible without the key (truncation leaves an IPv4 address 256 candidates;
an unkeyed hash would give them away). The rules read `host_key` and `net_key`, which fall
back to the stored address for events recorded before the pseudonyms existed, so verdicts
are the same whatever `ip_storage` says (tests/classify/test_evalset.py).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
from typing import Any, Literal

IpStorage = Literal["full", "truncated", "none"]
NAMESPACE = "addr"  # facts[NAMESPACE] = {"host": ..., "net": ...}
_V4_MASK = (2**32 - 1) ^ (2 ** (32 - 24) - 1)  # a /24
_V6_MASK = (2**128 - 1) ^ (2 ** (128 - 48) - 1)  # a /48


def _octet(part: str) -> bool:
    """A decimal octet as `ipaddress` accepts it: 0-255, no sign, no leading zero."""
    return (
        0 < len(part) <= 3
        and part.isdigit()
        and part.isascii()
        and (part == "0" or part[0] != "0")
        and int(part) <= 255
    )


@functools.lru_cache(maxsize=1 << 16)  # scanners and proxies come from few addresses
def stored_ip(ip: str, mode: IpStorage | str) -> str:
    """The form of `ip` kept in `interactionforemail.ipaddress` under `mode`.

    `truncated`: the network address of the /24 (IPv4) or /48 (IPv6), still a valid
    address ("203.0.113.0", "2001:db8:1::"), so views that read the column as an address
    keep working; an IPv4-mapped IPv6 address is truncated as the IPv4 address it maps.
    `none`: "" (as reply events have). Something that is not an address at all is kept
    under `full` only (truncated and none give "")."""
    if mode == "full":
        return ip[:45]
    if mode != "truncated" or not ip:
        return ""
    parts = ip.split(".")
    if len(parts) == 4 and all(map(_octet, parts)):  # the common case, 10x cheaper
        return f"{parts[0]}.{parts[1]}.{parts[2]}.0"
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if isinstance(addr, ipaddress.IPv4Address):
        return str(ipaddress.IPv4Address(int(addr) & _V4_MASK))
    return str(ipaddress.IPv6Address(int(addr) & _V6_MASK))


def stored_headers(headers: dict[str, str], mode: IpStorage | str) -> dict[str, str]:
    """The kept request headers (web/track.KEPT_HEADERS) as stored under `mode`: the
    addresses of `x-forwarded-for` are cut as `stored_ip` cuts the client's (the header
    goes altogether under none, or when nothing in it is an address). No rule reads it."""
    if mode == "full" or "x-forwarded-for" not in headers:
        return headers
    out = {k: v for k, v in headers.items() if k != "x-forwarded-for"}
    if mode == "truncated":
        parts = [stored_ip(p.strip(), mode) for p in headers["x-forwarded-for"].split(",")]
        chain = ", ".join(p for p in parts if p)
        if chain:
            out["x-forwarded-for"] = chain
    return out


def network_of(ip: str) -> str:
    """The part of an address `new_device` calls its network: all but the last
    dot-separated part (an IPv4 /24); an address without a dot (IPv6) is its own."""
    return ip.rsplit(".", 1)[0]


def pseudonyms(ip: str, scope: str, key: bytes) -> dict[str, str]:
    """`facts["addr"]` of a hit from `ip` on the recipient copy `scope` (its delivery id)."""
    return {"host": _mac(key, scope, "h", ip), "net": _mac(key, scope, "n", network_of(ip))}


def _mac(key: bytes, scope: str, what: str, value: str) -> str:
    message = f"{scope}\x00{what}\x00{value}".encode()
    return hashlib.blake2b(message, key=key, digest_size=8).hexdigest()


def derive_key(secret: bytes) -> bytes:
    """The pseudonym key, derived from a keyring secret (never the signing key itself)."""
    return hmac.new(secret, b"mailsignal/ip-pseudonym/v1", hashlib.sha256).digest()


def _addr(facts: Any) -> Any:
    return facts.get(NAMESPACE) if isinstance(facts, dict) else None


def host_key(ev: Any) -> str:
    """What `ev` (a classify.Event) is compared by as "the same address"."""
    addr = _addr(ev.facts)
    if addr:
        return str(addr.get("host", ev.ip))
    return str(ev.ip)


def net_key(ev: Any) -> str:
    """What `ev` is compared by as "the same network" (`new_device`)."""
    addr = _addr(ev.facts)
    if addr:
        return str(addr.get("net", network_of(ev.ip)))
    return network_of(ev.ip)
