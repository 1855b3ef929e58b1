"""Replace a bundled network list with a file the user downloaded (`mailsignal data refresh`).

MailSignal never downloads at run time: the operator fetches the vendor's feed (the
`feed` of each list in `data/net/lists.toml`) and hands the file in. It is validated in
full before anything is written, so a truncated download or an HTML error page cannot
replace a good list. Accepted layouts, detected from the content:

- text: one CIDR or bare address per line, `#` comments (Cloudflare, Telegram, lord-alfred)
- CSV: first column is the prefix (Apple egress CSV `prefix,country,region,city,`,
  RFC 8805 geofeeds from DigitalOcean, Linode, Vultr)
- AWS `ip-ranges.json`; Google `goog.json`/`cloud.json`/`googlebot.json` and Bing's
  `bingbot.json`; Azure Service Tags; the Microsoft 365 endpoints list (for
  `microsoft-eop` only the `*.mail.protection.outlook.com` entry is taken); Oracle.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailsignal.enrich.network import IPNetwork, bundled_net_dir, read_cidr_file, read_manifest
from mailsignal.errors import InputError

# Entry id of "*.mail.protection.outlook.com" in the Microsoft 365 endpoints web service.
_M365_EOP_ID = 10
_M365_EOP_URL = "mail.protection.outlook.com"


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What `refresh_list` wrote; `warnings` are for the operator, not errors."""

    name: str
    path: Path
    source_format: str
    read: int  # prefixes found in the source file, non-public ones included
    count: int  # prefixes written, after merging adjacent and nested ones
    ipv4: int
    ipv6: int
    warnings: tuple[str, ...]


def list_names() -> tuple[str, ...]:
    """Every list `refresh_list` accepts, in manifest order."""
    return tuple(read_manifest())


def _network(text: str, where: str) -> IPNetwork:
    try:
        # strict: host bits set means the line is not what the feed meant to publish.
        return ipaddress.ip_network(text.strip())
    except ValueError as exc:
        raise InputError(
            f"{where}: {text[:80]!r} is not an IP network ({exc})", detail={"where": where}
        ) from exc


def _from_lines(text: str, file_name: str) -> Iterator[IPNetwork]:
    for lineno, line in enumerate(text.splitlines(), start=1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        # CSV (Apple egress, geofeeds): the prefix is the first column.
        first = body.split(",", 1)[0].strip().strip('"')
        yield _network(first, f"{file_name} line {lineno}")


def _json_items(doc: Any, key: str, file_name: str) -> list[Any]:
    items = doc.get(key) if isinstance(doc, dict) else None
    if items is None:
        return []
    if not isinstance(items, list):
        raise InputError(f"{file_name}: {key!r} is not a list")
    return items


def _from_json(doc: Any, name: str, file_name: str) -> tuple[str, list[IPNetwork]]:
    nets: list[IPNetwork] = []
    if isinstance(doc, list):
        # Microsoft 365 endpoints: [{"id": 10, "urls": [...], "ips": [...]}, ...]
        for i, entry in enumerate(doc):
            if not isinstance(entry, dict) or "ips" not in entry:
                continue
            urls = entry.get("urls") or []
            is_eop = entry.get("id") == _M365_EOP_ID or any(_M365_EOP_URL in u for u in urls)
            if name == "microsoft-eop" and not is_eop:
                continue
            for j, ip in enumerate(entry["ips"]):
                nets.append(_network(str(ip), f"{file_name} [{i}].ips[{j}]"))
        return "m365-json", nets
    if not isinstance(doc, dict):
        raise InputError(f"{file_name}: unrecognised JSON layout")
    layouts = (
        ("prefixes", ("ip_prefix", "ipv4Prefix", "ipv6Prefix")),  # AWS v4, Google/Bing
        ("ipv6_prefixes", ("ipv6_prefix",)),  # AWS v6
    )
    found = None
    for key, fields in layouts:
        for i, item in enumerate(_json_items(doc, key, file_name)):
            field = next((f for f in fields if isinstance(item, dict) and f in item), None)
            if field is None:
                raise InputError(f"{file_name} {key}[{i}]: no {' or '.join(fields)}")
            nets.append(_network(str(item[field]), f"{file_name} {key}[{i}].{field}"))
            found = "aws-json" if field in ("ip_prefix", "ipv6_prefix") else "google-json"
    if found:
        return found, nets
    for i, tag in enumerate(_json_items(doc, "values", file_name)):  # Azure Service Tags
        prefixes = ((tag or {}).get("properties") or {}).get("addressPrefixes") or []
        for j, p in enumerate(prefixes):
            nets.append(_network(str(p), f"{file_name} values[{i}].addressPrefixes[{j}]"))
        found = "azure-json"
    for i, region in enumerate(_json_items(doc, "regions", file_name)):  # Oracle
        for j, c in enumerate((region or {}).get("cidrs") or []):
            cidr = c.get("cidr", "") if isinstance(c, dict) else c
            nets.append(_network(str(cidr), f"{file_name} regions[{i}].cidrs[{j}]"))
        found = "oracle-json"
    if not found:
        raise InputError(f"{file_name}: unrecognised JSON layout (no prefixes/values/regions)")
    return found, nets


def _parse(name: str, source_file: Path) -> tuple[str, list[IPNetwork]]:
    try:
        text = source_file.read_text("utf-8-sig")  # -sig: Windows tools add a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {source_file}: {exc}") from exc
    if text.lstrip()[:1] in ("{", "["):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{source_file.name} line {exc.lineno}: invalid JSON ({exc.msg})"
            ) from exc
        try:
            return _from_json(doc, name, source_file.name)
        except (AttributeError, TypeError) as exc:  # a known key holding the wrong shape
            raise InputError(f"{source_file.name}: unexpected JSON structure ({exc})") from exc
    return "text", list(_from_lines(text, source_file.name))


def _warnings(
    name: str, v4: Sequence[IPNetwork], v6: Sequence[IPNetwork], skipped: Sequence[IPNetwork]
) -> list[str]:
    bundled = read_cidr_file(bundled_net_dir().joinpath(f"{name}.txt"))
    old_v4 = sum(1 for n in bundled if n.version == 4)
    old_v6 = len(bundled) - old_v4
    notes = []
    if skipped:
        shown = ", ".join(str(n) for n in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        notes.append(f"skipped {len(skipped)} non-public networks ({shown})")
    for family, new, old in (("IPv4", v4, old_v4), ("IPv6", v6, old_v6)):
        if old and not new:
            notes.append(f"the file has no {family} networks; the bundled list had {old}")
    if len(v4) + len(v6) < len(bundled) // 10:
        notes.append(f"{len(v4) + len(v6)} networks against {len(bundled)} bundled: right file?")
    return notes


def refresh_list(
    name: str, source_file: Path, data_dir: Path, *, now: datetime | None = None
) -> RefreshResult:
    """Validate `source_file` and write it, merged, to `data_dir/net/<name>.txt`.

    Raises InputError (naming the line, or the JSON path) and writes nothing when any
    entry is not an IP network, when the file holds no public networks, or `name` is
    unknown. Non-public networks (private, documentation, reserved) are skipped.
    """
    specs = read_manifest()
    if name not in specs:
        raise InputError(f"unknown list {name!r}; known lists: {', '.join(specs)}")
    source_format, parsed = _parse(name, source_file)
    # Geofeeds ship documentation examples (Vultr's lists 192.0.2.0/24 and 2001:db8::/32):
    # no real hit comes from non-public space, and labelling it would mislabel test traffic.
    nets = [n for n in parsed if n.is_global]
    skipped = [n for n in parsed if not n.is_global]
    if not nets:
        raise InputError(f"{source_file.name}: no public IP networks found")
    # Every prefix of one list carries the same labels, so merging loses nothing and makes
    # Apple's ~290k raw rows load as ~14k.
    v4 = list(ipaddress.collapse_addresses(n for n in nets if n.version == 4))
    v6 = list(ipaddress.collapse_addresses(n for n in nets if n.version == 6))
    loaded = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    header = [
        f"list: {name}",
        f"source file: {source_file.name} ({source_format})",
        f"loaded: {loaded}",
        f"count: {len(v4) + len(v6)} ({len(v4)} IPv4, {len(v6)} IPv6) from {len(parsed)} entries",
        f"licence: as published by the source; bundled list was {specs[name].licence}",
    ]
    body = "".join(f"# {h}\n" for h in header) + "".join(f"{n}\n" for n in (*v4, *v6))
    target = data_dir / "net" / f"{name}.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a crash never leaves a half-written list for the next start.
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(body, "utf-8")
    os.replace(tmp, target)
    return RefreshResult(
        name=name,
        path=target,
        source_format=source_format,
        read=len(parsed),
        count=len(v4) + len(v6),
        ipv4=len(v4),
        ipv6=len(v6),
        warnings=tuple(_warnings(name, v4, v6, skipped)),
    )
