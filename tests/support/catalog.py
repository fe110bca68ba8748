"""The catalog the end-to-end tests run with: every model points at the local FakeUpstream
(`test-claude*` through its Anthropic Messages API; `test-video` on a plain `http` upstream,
which the gateway does not call).

Prices are chosen so charges are easy to check by hand: `test-chat` costs 1 micro per input
token and 2 micros per output token, so the upstream's usage (12 in, 7 out) costs 26 micros.
"""

from __future__ import annotations

from pathlib import Path

TEXT_RPM_FREE = 5
"""Requests per minute on the `text` category for the free plan (multiplier 1)."""
PRO_MULTIPLIER = 3
PRO_INCLUDED_DOLLARS = "2.00"
"""Credits the pro plan includes each period (granted on upgrade, prorated)."""
CAPPED_API_CALLS = 3
"""The `capped` plan's quota of API calls per billing period."""
CHAT_MAX_OUTPUT_TOKENS = 100
INPUT_MICROS_PER_TOKEN = 1
OUTPUT_MICROS_PER_TOKEN = 2
IMAGE_MICROS = 40_000
TTS_MICROS_PER_CHARACTER = 15
AUDIO_MICROS_PER_SECOND = 100
"""`test-whisper`: $0.006 a minute, whisper-1's price."""
SESSION_PRICE_DOLLARS = "1.00"
SESSION_PRICE_MICROS = 1_000_000
SESSION_DURATION_SECONDS = 86_400
SESSION_MAX_TOKENS = 100_000
SESSION_PACK_5_DOLLARS = "4.50"
SESSION_PACK_5_MICROS = 4_500_000
ANALYST_PRICE_MICROS = 100_000
"""The `analyst` session product, which `test-analyst` requires: $0.10 for 600 s or
`ANALYST_MAX_TOKENS` tokens (the FakeUpstream's answer uses 19: the second call crosses)."""
ANALYST_DURATION_SECONDS = 600
ANALYST_MAX_TOKENS = 30
PACK_10_MICROS = 10_000_000
"""`pack-10`: $10 buys $10."""
PACK_50_MICROS = 50_000_000
PACK_50_BONUS_MICROS = 5_000_000
"""`pack-50`: $50 buys $55; the $5 bonus expires 90 days after the payment."""
CONCURRENT_MAX_IN_FLIGHT = 3
"""The `concurrent` plan's cap on gateway calls under way at once (no rate limits)."""
SMALL_MICROS_PER_HOUR = 75_000
"""Metered sessions on `small`, free and pro plans: $0.075 an hour."""
LARGE_MICROS_PER_HOUR = 600_000
"""Metered sessions on `large` (pro only): $0.60 an hour."""


def catalog_text(upstream_base_url: str, *, text_rpm: int = TEXT_RPM_FREE) -> str:
    return f"""
version: "test"
currency: usd
default_plan: free
plans:
  free:
    rank: 0
    price: "0"
    rate_limit_multiplier: 1
    resource_tiers: [small]
    session_rates: {{small: "0.075"}}
  capped: {{rank: 5, price: "0", rate_limit_multiplier: 1, quotas: {{api_calls: {CAPPED_API_CALLS}}}}}
  pro:
    rank: 10
    price: "29.00"
    rate_limit_multiplier: {PRO_MULTIPLIER}
    included_credits: "{PRO_INCLUDED_DOLLARS}"
    features: [batch_generation]
    resource_tiers: [small, large]
    session_rates: {{small: "0.075", large: "0.60"}}
  lifetime: {{rank: 20, price: "499.00", interval: once, rate_limit_multiplier: null}}
  concurrent:
    rank: 7
    price: "0"
    rate_limit_multiplier: null
    max_in_flight: {CONCURRENT_MAX_IN_FLIGHT}
categories:
  text: {{requests_per_minute: {text_rpm}, tokens_per_minute: 1000000}}
  embeddings: {{requests_per_minute: 60}}
  text-to-image: {{requests_per_minute: 10}}
  text-to-speech: {{requests_per_minute: 10}}
  analysis: {{requests_per_minute: 60}}
  text-to-video: {{requests_per_minute: 10}}
  speech-to-text: {{requests_per_minute: 60}}
  moderation: {{requests_per_minute: 60}}
upstreams:
  fake: {{base_url: "{upstream_base_url}", api_key_env: TOLLHOUSE_TEST_UPSTREAM_KEY}}
  fake-anthropic:
    base_url: "{upstream_base_url.removesuffix("/v1")}"
    api_key_env: TOLLHOUSE_TEST_UPSTREAM_KEY
    protocol: anthropic
  fake-http: {{base_url: "{upstream_base_url}", protocol: http}}
models:
  test-chat:
    category: text
    upstream: fake
    upstream_model: echo
    max_output_tokens: {CHAT_MAX_OUTPUT_TOKENS}
    price: {{input_per_1m_tokens: "1", output_per_1m_tokens: "2"}}
  test-chat-nousage:
    category: text
    upstream: fake
    upstream_model: no-usage
    max_output_tokens: {CHAT_MAX_OUTPUT_TOKENS}
    price: {{input_per_1m_tokens: "1", output_per_1m_tokens: "2"}}
  test-chat-500: {{category: text, upstream: fake, upstream_model: error-500, price: {{per_request: "0.01"}}}}
  test-chat-400: {{category: text, upstream: fake, upstream_model: error-400, price: {{per_request: "0.01"}}}}
  test-chat-slow: {{category: text, upstream: fake, upstream_model: slow, price: {{per_request: "0.01"}}}}
  test-chat-slow-stream:
    category: text
    upstream: fake
    upstream_model: slow-stream
    max_output_tokens: {CHAT_MAX_OUTPUT_TOKENS}
    price: {{input_per_1m_tokens: "1", output_per_1m_tokens: "2"}}
  test-chat-gated:
    category: text
    upstream: fake
    upstream_model: gated-stream
    max_output_tokens: {CHAT_MAX_OUTPUT_TOKENS}
    price: {{input_per_1m_tokens: "1", output_per_1m_tokens: "2"}}
  test-chat-broken:
    category: text
    upstream: fake
    upstream_model: broken-stream
    max_output_tokens: {CHAT_MAX_OUTPUT_TOKENS}
    price: {{input_per_1m_tokens: "1", output_per_1m_tokens: "2"}}
  test-chat-pro:
    category: text
    upstream: fake
    upstream_model: echo
    min_plan: pro
    max_output_tokens: {CHAT_MAX_OUTPUT_TOKENS}
    price: {{input_per_1m_tokens: "1", output_per_1m_tokens: "2"}}
  test-embed:
    category: embeddings
    upstream: fake
    upstream_model: echo
    price: {{input_per_1m_tokens: "1"}}
  test-image:
    category: text-to-image
    upstream: fake
    upstream_model: echo
    price: {{per_image: "0.04"}}
  test-tts:
    category: text-to-speech
    upstream: fake
    upstream_model: echo
    price: {{per_1m_characters: "15"}}
  test-whisper:
    category: speech-to-text
    upstream: fake
    upstream_model: whisper-upstream
    price: {{per_audio_second: "0.0001"}}
  test-whisper-500: {{category: speech-to-text, upstream: fake, upstream_model: error-500, price: {{per_audio_second: "0.0001"}}}}
  omni-moderation-latest: {{category: moderation, upstream: fake, upstream_model: echo}}
  test-moderation-priced:
    category: moderation
    upstream: fake
    upstream_model: echo
    price: {{input_per_1m_tokens: "1"}}
  test-analyst:
    category: analysis
    upstream: fake
    upstream_model: echo
    max_output_tokens: {CHAT_MAX_OUTPUT_TOKENS}
    price: {{input_per_1m_tokens: "1", output_per_1m_tokens: "2"}}
  test-claude:
    category: text
    upstream: fake-anthropic
    upstream_model: echo
    max_output_tokens: {CHAT_MAX_OUTPUT_TOKENS}
    price: {{input_per_1m_tokens: "1", output_per_1m_tokens: "2"}}
  test-claude-nousage:
    category: text
    upstream: fake-anthropic
    upstream_model: no-usage
    max_output_tokens: {CHAT_MAX_OUTPUT_TOKENS}
    price: {{input_per_1m_tokens: "1", output_per_1m_tokens: "2"}}
  test-claude-broken:
    category: text
    upstream: fake-anthropic
    upstream_model: broken-stream
    max_output_tokens: {CHAT_MAX_OUTPUT_TOKENS}
    price: {{input_per_1m_tokens: "1", output_per_1m_tokens: "2"}}
  test-claude-500: {{category: text, upstream: fake-anthropic, upstream_model: error-500, price: {{per_request: "0.01"}}}}
  test-claude-400: {{category: text, upstream: fake-anthropic, upstream_model: error-400, price: {{per_request: "0.01"}}}}
  test-video: {{category: text-to-video, upstream: fake-http, price: {{per_request: "0.03"}}}}
session_products:
  analysis:
    price: "{SESSION_PRICE_DOLLARS}"
    duration: {SESSION_DURATION_SECONDS}
    max_tokens: {SESSION_MAX_TOKENS}
    models: [test-chat]
    packs:
      - {{sessions: 5, price: "{SESSION_PACK_5_DOLLARS}"}}
      - {{sessions: 20, price: "16.00"}}
  imaging:
    price: "0.50"
    duration: 3600
    categories: [text-to-image]
  analyst:
    price: "0.10"
    duration: {ANALYST_DURATION_SECONDS}
    max_tokens: {ANALYST_MAX_TOKENS}
    models: [test-analyst]
    required: true
credit_packs:
  pack-10: {{price: "10.00"}}
  pack-50: {{price: "50.00", bonus: "5.00", bonus_expiry_days: 90}}
"""


def write_catalog(directory: Path, upstream_base_url: str, **options: int) -> Path:
    path = directory / "catalog.yaml"
    path.write_text(catalog_text(upstream_base_url, **options))
    return path
