"""Rate-limit header fields on the wire: the IETF draft's and the older ones, side by side.

Story: a client library that follows draft-ietf-httpapi-ratelimit-headers reads
`RateLimit-Policy` and `RateLimit` from every gateway answer and every `/v1/authorize`, and from
the 429 that refuses a call; an older client reads `RateLimit-Limit`/`-Remaining`/`-Reset` from
the same answers. Both see the customer's request and token windows of the `text` category.
"""

from __future__ import annotations

import httpx
from tests.e2e.conftest import Stack
from tests.support.catalog import TEXT_RPM_FREE

TEXT_TPM = 1_000_000
"""The test catalog's `text` tokens per minute."""
CHAT = {"model": "test-chat", "messages": [{"role": "user", "content": "Say hello"}]}
POLICY = f'"text-rpm";q={TEXT_RPM_FREE};w=60, "text-tpm";q={TEXT_TPM};w=60'


def items(field: str) -> dict[str, dict[str, int]]:
    """A `RateLimit`/`RateLimit-Policy` List of `"name";key=int;...` items, by name."""
    parsed: dict[str, dict[str, int]] = {}
    for item in field.split(", "):
        name, *params = item.split(";")
        assert name.startswith('"') and name.endswith('"'), item
        parsed[name[1:-1]] = {k: int(v) for k, v in (p.split("=") for p in params)}
    return parsed


async def test_gateway_answers_carry_the_policy_and_the_windows_left(stack: Stack) -> None:
    _, key = await stack.customer()
    async with httpx.AsyncClient(
        base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        response = await http.post("/v1/chat/completions", json=CHAT)

    assert response.status_code == 200, response.text
    assert response.headers["RateLimit-Policy"] == POLICY
    windows = items(response.headers["RateLimit"])
    # requests: one of 5 used, the next freed in 60 / 5 = 12 s
    assert windows["text-rpm"] == {"r": TEXT_RPM_FREE - 1, "t": 12}
    assert 0 < windows["text-tpm"]["r"] < TEXT_TPM
    assert response.headers["RateLimit-Remaining"] == str(TEXT_RPM_FREE - 1)


async def test_authorize_answers_carry_the_same_fields(stack: Stack) -> None:
    _, key = await stack.customer()
    async with httpx.AsyncClient(
        base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        response = await http.post(
            "/v1/authorize", json={"model": "test-chat", "usage": {"input_tokens": 500}}
        )

    assert response.status_code == 200, response.text
    assert response.headers["RateLimit-Policy"] == POLICY
    assert items(response.headers["RateLimit"]) == {
        "text-rpm": {"r": TEXT_RPM_FREE - 1, "t": 12},
        "text-tpm": {"r": TEXT_TPM - 500, "t": 1},
    }


async def test_a_refused_call_names_the_exhausted_window_and_retry_after(stack: Stack) -> None:
    _, key = await stack.customer()
    async with httpx.AsyncClient(
        base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        for _ in range(TEXT_RPM_FREE):
            assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
        refused = await http.post("/v1/chat/completions", json=CHAT)
        refused_authorize = await http.post("/v1/authorize", json={"model": "test-chat"})

    for response in (refused, refused_authorize):
        assert response.status_code == 429, response.text
        assert response.headers["RateLimit-Policy"].startswith('"text-rpm";q=5;w=60')
        retry_after = int(response.headers["Retry-After"])
        rpm = items(response.headers["RateLimit"])["text-rpm"]
        assert rpm["r"] == 0
        assert 1 <= rpm["t"] <= retry_after  # the draft: Retry-After not before the window ends
        assert response.headers["RateLimit-Remaining"] == "0"
