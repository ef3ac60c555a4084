"""What the read API needs to know, read once from the settings when it starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sales_pipeline import settings
from sales_pipeline.settings import Settings


@dataclass(frozen=True)
class ApiConfig:
    """The read API's settings. Secrets (the tokens, the database URL's password) stay out of its repr."""

    database_url: str = field(repr=False)
    tokens: dict[str, str] = field(repr=False)  # token -> read | write; empty: open, on loopback only
    cors_origins: tuple[str, ...] = ()
    upload_max_bytes: int = 50 * 1024 * 1024
    upload_max_unzipped_bytes: int = 500 * 1024 * 1024
    inbox_dir: Path = Path(".sales_pipeline/inbox")
    mappings_dir: Path = Path("data/mappings")
    archive_dir: Path = Path(".sales_pipeline/archive")
    dagster_url: str = "http://127.0.0.1:3000"
    locale: str = "en"
    currency: str = "EUR"
    timezone: str = "UTC"  # PIPELINE_TIMEZONE: times in the alerts' sentences
    heartbeat_s: float = 20.0  # a WebSocket message at least this often, so that proxies keep the socket open
    pool_size: int = 8  # warehouse connections per API process

    @classmethod
    def from_settings(cls, config: Settings, database_url: str) -> ApiConfig:
        return cls(
            database_url=database_url,
            tokens=settings.api_tokens(),
            cors_origins=config.api.cors_origins,
            upload_max_bytes=config.api.upload_max_bytes,
            upload_max_unzipped_bytes=config.api.upload_max_unzipped_bytes,
            inbox_dir=config.inbox_dir,
            mappings_dir=config.mappings_dir,
            archive_dir=config.archive_dir,
            dagster_url=config.dagster_webserver_url,
            locale=config.report_locale,
            currency=config.report_currency,
            timezone=config.pipeline_timezone,
        )
