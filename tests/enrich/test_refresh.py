"""refresh_list: validate a downloaded feed, write a merged override, refuse bad files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailsignal.enrich.network import NetworkEnricher, load_networks, read_cidr_file, read_manifest
from mailsignal.enrich.refresh import list_names, refresh_list
from mailsignal.errors import InputError

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return path


def test_list_names_are_the_manifest() -> None:
    names = list_names()
    assert names == tuple(read_manifest())
    assert {"apple-private-relay", "microsoft-eop", "amazon", "google", "proofpoint"} <= set(names)


def test_plain_text_is_merged_and_written_with_a_header(tmp_path: Path) -> None:
    src = _write(
        tmp_path,
        "ips-v4",
        "# cloudflare\n173.245.48.0/21\n\n103.21.244.0/23\n103.21.246.0/23  # adjacent\n"
        "2400:cb00::/32\n2400:cb00:1::/48\n",
    )
    data = tmp_path / "data"
    result = refresh_list("cloudflare", src, data, now=NOW)
    assert result.path == data / "net" / "cloudflare.txt"
    assert (result.read, result.count, result.ipv4, result.ipv6) == (5, 3, 2, 1)
    assert result.source_format == "text"
    text = result.path.read_text()
    assert text.startswith("# list: cloudflare\n# source file: ips-v4 (text)\n")
    assert "# loaded: 2026-11-27T12:00:00+00:00\n" in text
    assert "# count: 3 (2 IPv4, 1 IPv6) from 5 entries\n" in text
    assert [str(n) for n in read_cidr_file(result.path)] == [
        "103.21.244.0/22",
        "173.245.48.0/21",
        "2400:cb00::/32",
    ]


def test_apple_egress_csv_takes_the_first_column(tmp_path: Path) -> None:
    src = _write(
        tmp_path,
        "egress-ip-ranges.csv",
        "172.224.224.0/27,GB,GB-EN,London,\n172.224.224.32/31,GB,GB-EN,London,\n"
        "2a02:26f7:b3c0:4000::/64,GB,GB-EN,London,\n",
    )
    result = refresh_list("apple-private-relay", src, tmp_path / "data", now=NOW)
    assert (result.ipv4, result.ipv6) == (2, 1)
    enricher = NetworkEnricher(load_networks(tmp_path / "data"))
    assert enricher.describe("172.224.224.33")["labels"] == ["apple-private-relay"]
    assert enricher.describe("2a02:26f7:b3c0:4000::5")["labels"] == ["apple-private-relay"]
    # The override replaced the bundled list instead of adding to it.
    assert enricher.describe("104.28.28.76")["labels"] == []


def test_aws_ip_ranges_json(tmp_path: Path) -> None:
    doc = {
        "syncToken": "1",
        "prefixes": [{"ip_prefix": "3.5.140.0/22", "region": "ap-northeast-2"}],
        "ipv6_prefixes": [{"ipv6_prefix": "2600:1f14::/35", "region": "us-west-2"}],
    }
    src = _write(tmp_path, "ip-ranges.json", json.dumps(doc))
    result = refresh_list("amazon", src, tmp_path, now=NOW)
    assert (result.source_format, result.ipv4, result.ipv6) == ("aws-json", 1, 1)


def test_google_goog_json(tmp_path: Path) -> None:
    doc = {"prefixes": [{"ipv4Prefix": "8.8.4.0/24"}, {"ipv6Prefix": "2001:4860::/32"}]}
    src = _write(tmp_path, "goog.json", json.dumps(doc))
    result = refresh_list("google", src, tmp_path, now=NOW)
    assert (result.source_format, result.ipv4, result.ipv6) == ("google-json", 1, 1)


def test_azure_service_tags_json(tmp_path: Path) -> None:
    doc = {
        "values": [
            {
                "name": "AzureCloud",
                "properties": {"addressPrefixes": ["4.128.0.0/9", "2a01:110::/31"]},
            }
        ]
    }
    src = _write(tmp_path, "ServiceTags_Public.json", json.dumps(doc))
    result = refresh_list("microsoft", src, tmp_path, now=NOW)
    assert (result.source_format, result.ipv4, result.ipv6) == ("azure-json", 1, 1)


def test_m365_endpoints_keep_only_eop_for_microsoft_eop(tmp_path: Path) -> None:
    doc = [
        {"id": 1, "urls": ["outlook.office.com"], "ips": ["13.107.6.152/31"]},
        {
            "id": 10,
            "urls": ["*.mail.protection.outlook.com"],
            "ips": ["40.92.0.0/15", "40.107.0.0/16", "2a01:111:f400::/48"],
        },
    ]
    src = _write(tmp_path, "endpoints.json", json.dumps(doc))
    eop = refresh_list("microsoft-eop", src, tmp_path, now=NOW)
    assert (eop.source_format, eop.ipv4, eop.ipv6) == ("m365-json", 2, 1)
    everything = refresh_list("microsoft-365-protection", src, tmp_path, now=NOW)
    assert everything.ipv4 == 3


def test_oracle_json(tmp_path: Path) -> None:
    doc = {"regions": [{"region": "eu-frankfurt-1", "cidrs": [{"cidr": "130.61.0.0/16"}]}]}
    src = _write(tmp_path, "public_ip_ranges.json", json.dumps(doc))
    assert refresh_list("oracle", src, tmp_path, now=NOW).source_format == "oracle-json"


def test_bad_line_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    src = _write(tmp_path, "list.txt", "# ok\n1.2.3.0/24\n<html>\n")
    with pytest.raises(InputError, match=r"list\.txt line 3: '<html>'"):
        refresh_list("amazon", src, tmp_path / "data")
    assert not (tmp_path / "data" / "net").exists()


def test_a_failed_refresh_keeps_the_previous_override(tmp_path: Path) -> None:
    good = _write(tmp_path, "good.txt", "3.5.140.0/22\n")
    refresh_list("amazon", good, tmp_path, now=NOW)
    before = (tmp_path / "net" / "amazon.txt").read_text()
    bad = _write(tmp_path, "bad.txt", "3.5.140.0/22\n3.5.140.0/33\n")
    with pytest.raises(InputError, match="line 2"):
        refresh_list("amazon", bad, tmp_path)
    assert (tmp_path / "net" / "amazon.txt").read_text() == before


def test_host_bits_set_is_a_bad_line(tmp_path: Path) -> None:
    src = _write(tmp_path, "list.txt", "10.0.0.0/8\n3.5.140.1/22\n")
    with pytest.raises(InputError, match=r"line 2.*host bits"):
        refresh_list("amazon", src, tmp_path)


def test_bad_json_prefix_names_its_path(tmp_path: Path) -> None:
    doc = {"prefixes": [{"ip_prefix": "3.5.140.0/22"}, {"ip_prefix": "3.5.999.0/22"}]}
    src = _write(tmp_path, "ip-ranges.json", json.dumps(doc))
    with pytest.raises(InputError, match=r"prefixes\[1\]\.ip_prefix"):
        refresh_list("amazon", src, tmp_path)


def test_broken_json_names_its_line(tmp_path: Path) -> None:
    src = _write(tmp_path, "ip-ranges.json", '{\n"prefixes": [\n  {"ip_prefix": }\n]}')
    with pytest.raises(InputError, match="line 3: invalid JSON"):
        refresh_list("amazon", src, tmp_path)


def test_unknown_json_layout_is_refused(tmp_path: Path) -> None:
    src = _write(tmp_path, "x.json", '{"something": []}')
    with pytest.raises(InputError, match="unrecognised JSON layout"):
        refresh_list("amazon", src, tmp_path)


@pytest.mark.parametrize(
    "doc",
    [{"values": ["AzureCloud"]}, {"regions": [7]}, [{"ips": ["40.92.0.0/15"], "urls": [1]}]],
)
def test_wrongly_shaped_json_is_an_input_error(tmp_path: Path, doc: object) -> None:
    src = _write(tmp_path, "odd.json", json.dumps(doc))
    with pytest.raises(InputError, match="unexpected JSON structure"):
        refresh_list("microsoft", src, tmp_path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    src = _write(tmp_path, "empty.txt", "# nothing here\n\n")
    with pytest.raises(InputError, match="no public IP networks"):
        refresh_list("amazon", src, tmp_path)


def test_unknown_list_name_is_refused(tmp_path: Path) -> None:
    src = _write(tmp_path, "list.txt", "1.2.3.0/24\n")
    with pytest.raises(InputError, match="unknown list 'aws'"):
        refresh_list("aws", src, tmp_path)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        refresh_list("amazon", tmp_path / "absent.txt", tmp_path)


def test_non_public_prefixes_are_skipped_with_a_warning(tmp_path: Path) -> None:
    src = _write(tmp_path, "geofeed.csv", "45.32.0.0/16,US,,,\n192.0.2.0/24,US,,,\n")
    result = refresh_list("vultr", src, tmp_path, now=NOW)
    assert (result.read, result.count) == (2, 1)
    assert any("skipped 1 non-public networks (192.0.2.0/24)" in w for w in result.warnings)


def test_dropping_a_whole_address_family_warns(tmp_path: Path) -> None:
    src = _write(tmp_path, "v4-only.txt", "104.28.28.0/26\n")
    result = refresh_list("apple-private-relay", src, tmp_path, now=NOW)
    assert any("no IPv6 networks" in w for w in result.warnings)
    assert any("right file?" in w for w in result.warnings)


def test_a_like_for_like_refresh_has_no_warnings(tmp_path: Path) -> None:
    bundled = Path(__file__).parents[2] / "src" / "mailsignal" / "data" / "net" / "amazon.txt"
    result = refresh_list("amazon", bundled, tmp_path, now=NOW)
    assert result.warnings == ()
    assert result.count == len(read_cidr_file(bundled))


def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    src = tmp_path / "excel.csv"
    src.write_bytes("\ufeff104.28.28.0/26,US,,,\r\n".encode())
    assert refresh_list("apple-private-relay", src, tmp_path, now=NOW).count == 1
