"""The enrichment the settings describe, built in one place for every path that enriches."""

from __future__ import annotations

from ..enrich import Pipeline
from ..settings import Settings


def default_enrichment(settings: Settings) -> Pipeline:
    """Network list overrides under `data_dir`, the optional city database
    (`geoip_city_db`) and `current_chrome_major`."""
    return Pipeline.default(
        settings.data_dir,
        mmdb_path=settings.geoip_city_db,
        current_chrome_major=settings.current_chrome_major,
    )
