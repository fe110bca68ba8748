"""Settings from the environment (prefix `TOLLHOUSE_`) or a `.env` file, via pydantic-settings.

| variable | default | meaning |
| --- | --- | --- |
| `TOLLHOUSE_DATABASE_URL` | `sqlite:///./tollhouse.db` | `sqlite:///x.db` or `postgresql://user@host/db` (`postgres://` too); the async driver is picked here |
| `TOLLHOUSE_REDIS_URL` | unset | unset = in-process rate limiter and caches; `redis://...` shares them across processes |
| `TOLLHOUSE_REDIS_FAILURE_POLICY` | `fail-closed` | while Redis is unreachable: `fail-closed` answers rate-limited calls 503 with `Retry-After`; `fail-open` decides them in each process alone (logged once per outage) |
| `TOLLHOUSE_CATALOG` | unset | path of the catalog YAML; unset = `./tollhouse.yaml` if it exists, else the built-in catalog |
| `TOLLHOUSE_BOOTSTRAP_KEY` | unset | an operator key to install on first start instead of generating one |
| `TOLLHOUSE_KEY_SECRET` | empty | HMAC-SHA256 secret for API key digests (empty = plain HMAC with an empty key) |
| `TOLLHOUSE_KEY_ENV` | `live` | the `<env>` part of new keys: `th_<env>_...` |
| `TOLLHOUSE_HOST`, `TOLLHOUSE_PORT` | `127.0.0.1`, `8080` | where `tollhouse serve` listens |
| `TOLLHOUSE_UPSTREAM_TIMEOUT_SECONDS` | `300` | total time allowed for one upstream call |
| `TOLLHOUSE_SHUTDOWN_GRACE_SECONDS` | `30` | after SIGTERM, `serve` exits within this: requests and streams under way get it less a third (at most 5 s), then they are cut, and that rest is for the settlements and writes they left |
| `TOLLHOUSE_MAX_BODY_BYTES` | `4194304` | larger request bodies are refused with 413 |
| `TOLLHOUSE_IN_FLIGHT_LEASE_SECONDS` | `30` | lease of an in-flight slot (`max_in_flight`): renewed while its call runs, so a crashed process's slots free themselves within it |
| `TOLLHOUSE_HOLD_TIMEOUT_SECONDS` | `3600` | life of a hold made without an expiry; the sweeper voids it after that. Gateway and `/v1/authorize` holds live `TOLLHOUSE_UPSTREAM_TIMEOUT_SECONDS` plus a minute |
| `TOLLHOUSE_DELIVER_WEBHOOKS` | `true` | whether this process's `serve` sends webhooks (`false`: leave them to other processes) |
| `TOLLHOUSE_INVOICE_NUMBER_PREFIX` | `TH-` | invoices are numbered `TH-000001`, `TH-000002`, ... |
| `TOLLHOUSE_CREDIT_NOTE_NUMBER_PREFIX` | `CN-` | credit notes (refunds) are numbered `CN-000001`, ... |
| `TOLLHOUSE_TAX_RATES` | `{}` | JSON, country (ISO 3166-1 alpha-2) -> rate: `{"DE": "0.19", "FR": "0.2"}` |
| `TOLLHOUSE_INVOICE_ISSUER` | empty | who issues the invoices (name, address), printed at their top |
| `TOLLHOUSE_STRIPE_API_KEY` | unset | Stripe secret key (`sk_...`); with the webhook secret, turns on Stripe checkout, webhooks and auto top-up |
| `TOLLHOUSE_STRIPE_WEBHOOK_SECRET` | unset | the webhook endpoint's signing secret (`whsec_...`) |
| `TOLLHOUSE_STRIPE_API_BASE` | unset | another Stripe API address (a test server); unset = Stripe's |
| `TOLLHOUSE_STRIPE_WEBHOOK_TOLERANCE_SECONDS` | `300` | a webhook signed longer ago is refused (a replay) |
| `TOLLHOUSE_CHECKOUT_SUCCESS_URL`, `TOLLHOUSE_CHECKOUT_CANCEL_URL` | unset | where Stripe sends the customer after a checkout, when the request names none |
| `TOLLHOUSE_DASHBOARD` | `true` | serve the dashboard at `/dashboard` (`false`: switch it off) |
| `TOLLHOUSE_PUBLIC_URL` | `http://<host>:<port>` | the address people reach tollhouse at (password-reset links) |
| `TOLLHOUSE_SECURE_COOKIES` | `true` | mark the dashboard's cookies `Secure` (browsers keep them on `https://` and on `http://localhost`) |
| `TOLLHOUSE_METRICS` | `true` | serve Prometheus metrics at `/metrics` (`false`: switch it off) |
| `TOLLHOUSE_METRICS_TOKEN` | unset | when set, `/metrics` asks for `Authorization: Bearer <token>`; unset = open, as Prometheus scrapes by default |
| `TOLLHOUSE_LOG_FORMAT` | `auto` | `json` (one JSON object a line), `console` (for people), `auto`: `console` when stderr is a terminal, else `json` |
| `TOLLHOUSE_LOG_LEVEL` | `info` | the lowest level logged: `debug`, `info`, `warning`, `error` |
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tollhouse.storage.engine import async_database_url

NUMBER_PREFIX_PATTERN = r"^[A-Za-z0-9._/-]{0,16}$"
"""A document number's prefix: up to 16 letters, digits, `.`, `_`, `/` or `-`."""
_COUNTRY = re.compile(r"^[A-Z]{2}$")

CATALOG_FILE = Path("tollhouse.yaml")
"""The catalog file `tollhouse init` writes, used from the working directory when present."""


def _catalog_in_working_directory() -> Path | None:
    return CATALOG_FILE if CATALOG_FILE.is_file() else None


class Settings(BaseSettings):
    """Process-wide settings; build one with `get_settings()` or directly in tests."""

    model_config = SettingsConfigDict(env_prefix="TOLLHOUSE_", env_file=".env", extra="ignore")

    database_url: str = Field(default="sqlite:///./tollhouse.db", validate_default=True)
    """SQLAlchemy async URL of the system of record, normalised to tollhouse's async driver
    (`storage.engine.async_database_url`: `postgres://...` -> `postgresql+asyncpg://...`)."""
    redis_url: str | None = None
    """Redis for shared rate limits; None = in-process."""
    redis_failure_policy: Literal["fail-closed", "fail-open"] = "fail-closed"
    """What decides rate limits while Redis is unreachable (`ratelimit.storage.failover`)."""
    catalog: Path | None = Field(default_factory=_catalog_in_working_directory)
    """Catalog YAML path; default `./tollhouse.yaml` when that file exists; None = the
    built-in catalog."""
    bootstrap_key: SecretStr | None = None
    """Operator key to install on first start (must be a well-formed `th_` key)."""
    key_secret: SecretStr = SecretStr("")
    """HMAC secret for API key digests. Changing it invalidates every key."""
    key_env: str = Field(default="live", pattern=r"^[a-z0-9]{1,12}$")
    """The `<env>` label of new keys."""
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    upstream_timeout_seconds: float = Field(default=300.0, gt=0)
    """Total seconds one upstream call may take before the gateway answers 504."""
    keep_alive_seconds: int = Field(default=75, ge=1, le=3600)
    """How long `serve` keeps an idle HTTP/1.1 connection open. Longer than the idle timeout
    of the clients and load balancers in front of it (60 s is common), so the server never
    closes a connection just as a client sends on it (the client would see the connection
    reset, and not know whether its request was served)."""
    shutdown_grace_seconds: int = Field(default=30, ge=1, le=3600)
    """After SIGTERM, `serve` exits within this many seconds: it stops accepting
    connections and waits for the requests and streams under way (`drain_seconds`, uvicorn's
    `timeout_graceful_shutdown`); a stream still running then is cut and settled for what it
    delivered, a call still waiting for its upstream has its hold voided. The rest of the
    grace (`settle_seconds`) is for the settlements, usage events and ledger writes they
    left (`Runtime.stop`)."""

    @property
    def settle_seconds(self) -> float:
        """The part of `shutdown_grace_seconds` kept for settling after the requests drained:
        a third of it, at most 5 s (a settlement is a commit or two)."""
        return min(5.0, self.shutdown_grace_seconds / 3)

    @property
    def drain_seconds(self) -> float:
        """The part of `shutdown_grace_seconds` the requests and streams under way get."""
        return self.shutdown_grace_seconds - self.settle_seconds

    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    """Largest accepted request body in bytes; larger gets 413."""
    in_flight_lease_seconds: float = Field(default=30.0, gt=0, le=3600)
    """Lease of an in-flight slot: renewed while its call runs; a crashed process's slots
    free themselves this long after its last renewal at most."""
    hold_timeout_seconds: int = Field(default=3600, gt=0)
    """Life of a hold made without an expiry (the ledger's `hold_ttl_seconds`): the sweeper
    voids it when it is still open this long after it was made (a crashed client's
    reservation)."""
    deliver_webhooks: bool = True
    """Run the webhook worker in this process (`webhooks.worker`); any number of processes
    may, they share the work through leases."""

    invoice_number_prefix: str = Field(default="TH-", pattern=NUMBER_PREFIX_PATTERN)
    """Invoices are numbered with this prefix and six digits at least (`TH-000001`)."""
    credit_note_number_prefix: str = Field(default="CN-", pattern=NUMBER_PREFIX_PATTERN)
    """Credit notes (refunds), their own series: `CN-000001`."""
    tax_rates: dict[str, Decimal] = Field(default_factory=dict)
    """Tax rate per customer country (ISO 3166-1 alpha-2 -> fraction in [0, 1), `"0.19"`);
    a customer without a country, or of a country not listed, is billed no tax."""
    invoice_issuer: str = Field(default="", max_length=500)
    """Who issues the invoices (name, address; newlines kept), printed at their top."""

    @field_validator("tax_rates")
    @classmethod
    def _tax_rates(cls, rates: dict[str, Decimal]) -> dict[str, Decimal]:
        for country, rate in rates.items():
            if not _COUNTRY.match(country):
                raise ValueError(f"{country!r} is not an ISO 3166-1 alpha-2 code such as 'DE'")
            if not rate.is_finite() or not Decimal(0) <= rate < 1:
                raise ValueError(f'the rate of {country} must be in [0, 1), e.g. "0.19"')
        return rates

    stripe_api_key: SecretStr | None = None
    """Stripe's secret API key; unset = the Stripe routes answer 503 payments-not-configured."""
    stripe_webhook_secret: SecretStr | None = None
    """The signing secret of the Stripe webhook endpoint (`whsec_...`)."""
    stripe_api_base: str | None = Field(default=None, pattern=r"^https?://\S+$")
    """Stripe's API address, for a local test server; None = `https://api.stripe.com`."""
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1, le=86_400)
    """Oldest accepted `Stripe-Signature` timestamp, in seconds (Stripe's default)."""
    checkout_success_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    """Where Stripe sends a customer who paid, unless the checkout request names a URL."""
    checkout_cancel_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    """Where Stripe sends a customer who went back, unless the checkout request names one."""
    dashboard: bool = True
    """Serve the dashboard at `/dashboard`."""
    public_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    """Where people reach tollhouse (reset links); None = `http://<host>:<port>`."""
    secure_cookies: bool = True
    """The dashboard's cookies are `Secure`."""
    metrics: bool = True
    """Serve Prometheus metrics at `/metrics` (`observability.metrics`)."""
    metrics_token: SecretStr | None = None
    """A bearer token `/metrics` asks for; None = no credentials asked."""
    log_format: Literal["auto", "json", "console"] = "auto"
    """How `serve` writes log lines (`observability.logs`)."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """The lowest level `serve` logs."""

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def base_url(self) -> str:
        """`public_url`, or this process's own address, without a trailing `/`."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        return async_database_url(url)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
