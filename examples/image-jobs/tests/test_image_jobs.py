"""The image job API end to end over HTTP: a batch held per image and charged for the images
that succeeded; a training charged when it succeeds and released when it fails; the plan's
models and features checked before a job is queued; a caller sees only its own jobs.

In the `image-api` preset a batch image costs $0.008 and a training $2.00 (plan `creator`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from examples.conftest import Servers

EXAMPLE = Path(__file__).parents[1]
IMAGES = [f"https://photos.example/{n}.jpg" for n in range(4)]


async def finished(http: httpx.AsyncClient, job_id: str, auth: dict[str, str]) -> dict[str, Any]:
    """Poll the job until it ends."""
    for _ in range(200):
        job: dict[str, Any] = (await http.get(f"/v1/jobs/{job_id}", headers=auth)).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end")


async def test_batches_and_trainings_charge_what_succeeded(servers: Servers) -> None:
    example = servers.example(EXAMPLE, "image-api")
    creator_id, creator_key = example.customer("5.00", plan="creator")
    free_id, free_key = example.customer("0")
    creator = {"Authorization": f"Bearer {creator_key}"}
    free = {"Authorization": f"Bearer {free_key}"}
    before = example.available_micros(creator_id)  # $5 plus the plan's included credits
    free_before = example.available_micros(free_id)

    async with httpx.AsyncClient(base_url=example.base_url) as http:
        batch = await http.post(
            "/v1/batches", json={"prompts": ["a red fox", "nsfw please", "a blue owl"]},
            headers=creator,
        )  # fmt: skip
        batch_done = await finished(http, batch.json()["id"], creator)
        trained = await http.post("/v1/trainings", json={"images": IMAGES}, headers=creator)
        trained_done = await finished(http, trained.json()["id"], creator)
        oom = await http.post(
            "/v1/trainings", json={"images": IMAGES, "steps": 8_000}, headers=creator
        )
        oom_done = await finished(http, oom.json()["id"], creator)
        not_in_plan = await http.post("/v1/trainings", json={"images": IMAGES}, headers=free)
        peek = await http.get(f"/v1/jobs/{batch.json()['id']}", headers=free)

    assert batch.status_code == 202 and batch.json()["held_micros"] == 24_000  # 3 x $0.008
    assert [item["status"] for item in batch_done["items"]] == ["succeeded", "failed", "succeeded"]
    assert trained_done["status"] == "succeeded" and trained_done["items"][0]["url"]
    assert oom_done["status"] == "failed" and oom_done["error"] == "out of GPU memory"
    # 2 images and one training charged; the nsfw image and the failed training released
    assert example.available_micros(creator_id) == before - 2 * 8_000 - 2_000_000
    assert not_in_plan.status_code == 403
    assert not_in_plan.json()["type"].endswith("/model-not-in-plan")
    assert peek.status_code == 404
    assert example.available_micros(free_id) == free_before
