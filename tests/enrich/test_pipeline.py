"""Pipeline: ordered enrichers, one namespace each, declared facts, failures as data."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailsignal.enrich import Enricher, NetworkEnricher, Pipeline, UserAgentEnricher
from mailsignal.enrich.network import load_networks
from mailsignal.enrich.refresh import refresh_list
from mailsignal.errors import ConfigError
from mailsignal.model import (
    STANDARD_FACTS,
    FactKind,
    FactSpec,
    RawHit,
    TokenKind,
    fact_registry,
)

FIXTURES = Path(__file__).parents[1] / "fixtures"


def hit(ip: str = "104.28.28.76", ua: str = "Mozilla/5.0", hit_id: str = "j1:1") -> RawHit:
    return RawHit(
        hit_id=hit_id,
        received_at=datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
        kind=TokenKind.OPEN,
        delivery_id=1,
        link_id=None,
        ip=ip,
        user_agent=ua,
        method="GET",
    )


@pytest.fixture(scope="module")
def default() -> Pipeline:
    return Pipeline.default()


class Broken:
    namespace = "broken"
    provides = (FactSpec("rows", FactKind.ANY, None, "never written: it always fails"),)

    def __init__(self) -> None:
        self.calls = 0

    def enrich(self, hit: RawHit) -> dict[str, Any]:
        self.calls += 1
        raise KeyError("no such table")


class Echo:
    namespace = "echo"
    provides: tuple[FactSpec, ...] = (FactSpec("hit_id", FactKind.STR, "", "the hit's id"),)

    def enrich(self, hit: RawHit) -> dict[str, Any]:
        return {"hit_id": hit.hit_id}


def test_default_order_is_user_agent_then_network(default: Pipeline) -> None:
    assert default.namespaces == ("ua", "net")
    assert isinstance(default.enrichers[0], UserAgentEnricher)
    assert isinstance(default.enrichers[1], NetworkEnricher)


def test_apple_mpp_hit_carries_both_halves_of_the_evidence(default: Pipeline) -> None:
    facts = default.enrich(hit())
    assert list(facts) == ["ua", "net"]
    assert facts["ua"]["bare_mozilla"] is True
    assert facts["ua"]["category"] == "prefetcher"
    assert facts["net"]["labels"] == ["apple-private-relay"]
    json.dumps(facts)  # plain JSON values, storable as-is


def test_safe_links_hit_from_eop(default: Pipeline) -> None:
    chrome72 = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/72.0.3626.109 Safari/537.36"
    )
    facts = default.enrich(hit(ip="40.107.235.10", ua=chrome72))
    assert (facts["ua"]["category"], facts["ua"]["outdated_chrome"]) == ("browser", True)
    assert "microsoft-eop" in facts["net"]["labels"]
    assert "security-gateway" in facts["net"]["labels"]


def test_bad_ip_and_empty_ua_still_give_facts(default: Pipeline) -> None:
    facts = default.enrich(hit(ip="unknown", ua=""))
    assert facts["net"]["valid"] is False
    assert facts["ua"]["category"] == "automation"


def test_a_failing_enricher_is_recorded_and_the_rest_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = Broken()
    pipeline = Pipeline([broken, Echo()])
    with caplog.at_level(logging.WARNING, logger="mailsignal.enrich"):
        first = pipeline.enrich(hit(hit_id="a"))
        second = pipeline.enrich(hit(hit_id="b"))
    assert first == {"broken": {"error": "KeyError: 'no such table'"}, "echo": {"hit_id": "a"}}
    assert second["echo"] == {"hit_id": "b"}
    assert broken.calls == 2
    # One log line per kind of failure, not one per hit; every hit keeps its error.
    assert len([r for r in caplog.records if "failed" in r.getMessage()]) == 1


def test_two_enrichers_may_not_share_a_namespace() -> None:
    with pytest.raises(ConfigError, match="'echo'"):
        Pipeline([Echo(), Echo()])


def test_enrichers_satisfy_the_protocol() -> None:
    enrichers: list[Enricher] = [Echo(), Broken(), UserAgentEnricher()]
    assert [e.namespace for e in enrichers] == ["echo", "broken", "ua"]


def test_default_prefers_refreshed_lists_in_data_dir(default: Pipeline, tmp_path: Path) -> None:
    assert default.enrich(hit(ip="151.101.5.5"))["net"]["labels"] == []
    src = tmp_path / "egress.csv"
    src.write_text("151.101.0.0/16,US,US-CA,Cupertino,\n")
    refresh_list("apple-private-relay", src, tmp_path)
    facts = Pipeline.default(tmp_path).enrich(hit(ip="151.101.5.5"))
    assert facts["net"]["labels"] == ["apple-private-relay"]
    assert facts["net"]["owner"] == "apple"


def test_default_passes_current_chrome_major() -> None:
    chrome140 = "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/140.0.0.0 Safari/537.36"
    old = Pipeline.default(current_chrome_major=150).enrich(hit(ua=chrome140))
    assert old["ua"]["outdated_chrome"] is True


# --- declared facts -------------------------------------------------------------------


def test_the_pipeline_gathers_every_declaration_by_full_name(default: Pipeline) -> None:
    assert default.facts == STANDARD_FACTS
    assert list(default.facts)[:2] == ["ua.family", "ua.major"]
    assert default.facts["net.labels"].kind is FactKind.LABELS
    assert Pipeline([Echo()]).facts == {"echo.hit_id": Echo.provides[0]}
    with pytest.raises(TypeError):
        default.facts["ua.new"] = Echo.provides[0]  # type: ignore[index]  # read-only


def test_an_enricher_that_declares_nothing_is_refused() -> None:
    class Silent:
        namespace = "silent"

        def enrich(self, hit: RawHit) -> dict[str, Any]:
            return {"x": 1}

    with pytest.raises(ConfigError, match="'silent' declares no facts"):
        Pipeline([Silent()])  # type: ignore[list-item]
    Silent.provides = ("x",)  # type: ignore[attr-defined]  # names alone are not declarations
    with pytest.raises(ConfigError, match="'silent' declares no facts"):
        Pipeline([Silent()])  # type: ignore[list-item]


def test_a_fact_declared_twice_is_refused() -> None:
    class Twice(Echo):
        provides = (*Echo.provides, *Echo.provides)

    with pytest.raises(ConfigError, match=r"'echo\.hit_id' is declared twice"):
        Pipeline([Twice()])


def test_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="reserved"):
        FactSpec("error", FactKind.STR, "", "where failures go")
    with pytest.raises(ValueError, match="identifier"):
        FactSpec("ua.category", FactKind.STR, "", "a dotted name")
    with pytest.raises(TypeError):
        FactSpec("many", FactKind.LABELS, [], "an unhashable default")
    with pytest.raises(ValueError, match="namespace"):
        fact_registry([("geo.v2", Echo.provides)])


def _as_declared(
    namespace: str, written: dict[str, Any], optional: frozenset[str] = frozenset()
) -> None:
    """Every key written is declared, and every declared one written unless optional."""
    declared = {n.partition(".")[2] for n in STANDARD_FACTS if n.startswith(namespace + ".")}
    assert set(written) <= declared, f"written, not declared: {set(written) - declared}"
    assert declared - set(written) <= optional, f"declared, not written: {declared - set(written)}"


def test_the_user_agent_enricher_writes_what_it_declares() -> None:
    enricher = UserAgentEnricher()
    lines = (FIXTURES / "user_agents.tsv").read_text().splitlines()[1:]
    for ua in ["", "Mozilla/5.0", *(line.split("\t")[0] for line in lines)]:
        _as_declared("ua", enricher.describe(ua))


def test_the_network_enricher_writes_what_it_declares() -> None:
    addresses = ["104.28.28.76", "10.0.0.1", "2a01:111:f400::1", "::ffff:40.107.0.1", "x", ""]
    plain = NetworkEnricher(load_networks())

    class Geo:
        def get(self, ip_address: str, /) -> Any:
            return {"country": {"iso_code": "DE"}}

    with_geo = NetworkEnricher(load_networks(), geo=Geo())
    for ip in addresses:
        _as_declared("net", plain.describe(ip), optional=frozenset({"country", "city"}))
        _as_declared("net", with_geo.describe(ip))
