"""Enrichment: add facts to a raw hit, one namespace per enricher (Snowplow-style).

Enrichers are pure: they read the hit and lookup tables handed in at construction, and
return plain JSON values. The classifier reads the combined `Facts`; rules never parse a
user agent or an IP themselves. A failing enricher does not lose the hit: its namespace
holds `{"error": "..."}` instead, and the classifier treats that as missing evidence.

Each enricher declares the facts it writes (`provides`: name, kind, default, meaning;
`model.FactSpec`), and the pipeline gathers them into one registry (`Pipeline.facts`,
`"ua.category"`, `"net.labels"`, ...). The classifier is handed that registry and checks
every rule's reads against it, so a new enricher and the rules that read it plug in
without touching either engine: write the enricher, add it to `Pipeline.default`, pass
`pipeline.facts` to `classify_timeline` (docs/rules.md, "Enrichment facts").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from mailsignal.enrich.network import NetworkEnricher, load_networks, open_geo
from mailsignal.enrich.useragent import DEFAULT_CURRENT_CHROME_MAJOR, UserAgentEnricher
from mailsignal.errors import ConfigError
from mailsignal.model import FactRegistry, Facts, FactSpec, RawHit, fact_registry

__all__ = ["Enricher", "NetworkEnricher", "Pipeline", "UserAgentEnricher"]

_log = logging.getLogger(__name__)


class Enricher(Protocol):
    """Adds facts about one hit under its own `namespace`: those it declares in `provides`.

    Every key `enrich` returns is declared, and only those: the store keeps the dicts as
    they are, and the classifier reads them by the declared names (tests/enrich checks
    that each enricher's output matches its declarations).
    """

    namespace: str

    @property
    def provides(self) -> Sequence[FactSpec]: ...  # read-only: a class attribute will do

    def enrich(self, hit: RawHit) -> dict[str, Any]: ...


class Pipeline:
    """An ordered tuple of enrichers; `enrich` runs them all and never raises."""

    def __init__(self, enrichers: Iterable[Enricher]) -> None:
        self.enrichers = tuple(enrichers)
        seen: set[str] = set()
        for enricher in self.enrichers:
            if enricher.namespace in seen:
                raise ConfigError(f"two enrichers write the namespace {enricher.namespace!r}")
            seen.add(enricher.namespace)
            # Checked here, once, rather than when a rule first reads a fact nobody declared.
            provides = getattr(enricher, "provides", None)
            if not isinstance(provides, Sequence) or not all(
                isinstance(spec, FactSpec) for spec in provides
            ):
                raise ConfigError(
                    f"enricher {enricher.namespace!r} declares no facts: give it `provides`, "
                    "a sequence of model.FactSpec"
                )
        try:
            self.facts: FactRegistry = fact_registry(
                (e.namespace, e.provides) for e in self.enrichers
            )
        except ValueError as exc:  # a name declared twice
            raise ConfigError(f"enricher declarations: {exc}") from exc
        # Log the first failure of each kind only: a broken table would otherwise write a
        # traceback per hit, and every failure is already stored with the hit.
        self._logged: set[tuple[str, type[BaseException]]] = set()

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(e.namespace for e in self.enrichers)

    def enrich(self, hit: RawHit) -> Facts:
        facts: Facts = {}
        for enricher in self.enrichers:
            try:
                facts[enricher.namespace] = enricher.enrich(hit)
            except Exception as exc:
                facts[enricher.namespace] = {"error": f"{type(exc).__name__}: {exc}"}
                if (key := (enricher.namespace, type(exc))) not in self._logged:
                    self._logged.add(key)
                    _log.warning("enricher %r failed on hit %s", key[0], hit.hit_id, exc_info=True)
        return facts

    @classmethod
    def default(
        cls,
        data_dir: Path | None = None,
        *,
        mmdb_path: Path | None = None,
        current_chrome_major: int = DEFAULT_CURRENT_CHROME_MAJOR,
    ) -> Pipeline:
        """The standard pipeline; network lists from `data_dir/net/` overrides, else bundled."""
        geo = open_geo(mmdb_path) if mmdb_path is not None else None
        return cls(
            (
                # 1. User agent first: cheapest (cached; most hits repeat a few UAs) and the
                #    only source that names image proxies, prefetchers and preview bots.
                UserAgentEnricher(current_chrome_major=current_chrome_major),
                # 2. Network second: labels the IP (Apple relay, EOP, clouds, mail-security
                #    vendors) that the classifier weighs against the UA category, e.g. bare
                #    "Mozilla/5.0" is MPP only from an apple-private-relay address.
                NetworkEnricher(load_networks(data_dir), geo=geo),
            )
        )
