"""An image-generation and LoRA-training job API that charges credits per image and per
training job.

- `POST /v1/batches` queues a batch of prompts (202): the price of its images is held at
  once; each image that succeeds is charged, and the hold of the failed ones is released.
- `POST /v1/trainings` queues a LoRA training job ($2.00 on plans with `lora_training`):
  charged when it succeeds, released when it fails.
- `GET /v1/jobs/{id}` polls a job; a caller sees only its own jobs.

tollhouse runs in this process (`tollhouse.integrations`): `requires` (or `authorize`, for a
batch's size) holds the price before the job is queued (402 when the wallet cannot cover it, 403 when the plan lacks the model or
the feature, 429 over a rate limit or a quota, all before any work), `work.keep()` leaves the
work to the job, which settles it with `toll.settle` when it ends. The catalog is the
`image-api` preset (`tollhouse init --preset image-api`). The images themselves are made up
here: a prompt containing "nsfw" is refused by the pretend safety filter, a training of more
than 5,000 steps runs out of memory.

Run: `TOLLHOUSE_DATABASE_URL=sqlite:///./jobs.db uvicorn app:app`
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Literal

from fastapi import HTTPException, Request
from pydantic import BaseModel, Field

from tollhouse import Runtime, Settings, create_app
from tollhouse.integrations import LocalToll, Requirement, Work, authorize, install, requires
from tollhouse.integrations.asgi import caller_key

runtime = Runtime(Settings())  # TOLLHOUSE_DATABASE_URL and TOLLHOUSE_CATALOG from the environment
toll = LocalToll(runtime)
app = create_app(runtime)  # tollhouse's API too; its lifespan starts and stops the runtime
install(app, toll)

MAX_BATCH = 16
"""Prompts a batch may have."""
Status = Literal["queued", "running", "succeeded", "failed"]


@dataclass
class Job:
    id: str
    customer_id: str
    kind: Literal["batch", "training"]
    status: Status = "queued"
    items: list[dict[str, str]] = field(default_factory=list)
    steps: int = 0
    error: str | None = None
    held_micros: int = 0


JOBS: dict[str, Job] = {}
"""Jobs by id (in memory: a real app keeps them in its database)."""
_running: set[asyncio.Task[None]] = set()


class BatchIn(BaseModel):
    prompts: list[str] = Field(min_length=1, max_length=MAX_BATCH)


class TrainingIn(BaseModel):
    images: list[str] = Field(min_length=4, max_length=100)
    """URLs of the training images."""
    steps: int = Field(default=1_000, ge=100, le=20_000)


class JobOut(BaseModel):
    id: str
    kind: str
    status: Status
    items: list[dict[str, str]]
    error: str | None
    held_micros: int


def _out(job: Job) -> JobOut:
    return JobOut(id=job.id, kind=job.kind, status=job.status, items=job.items, error=job.error,
                  held_micros=job.held_micros)  # fmt: skip


def _queue(job: Job, work: Work) -> JobOut:
    work.keep()  # settled by the job, not by the response
    JOBS[job.id] = job
    task = asyncio.create_task(_run(job, work))
    _running.add(task)
    task.add_done_callback(_running.discard)
    return _out(job)


async def _run(job: Job, work: Work) -> None:
    job.status = "running"
    if job.kind == "batch":
        for item in job.items:
            await asyncio.sleep(0.01)  # the model at work
            if "nsfw" in item["prompt"]:
                item.update(status="failed", error="refused by the safety filter")
            else:
                digest = hashlib.sha256(item["prompt"].encode()).hexdigest()[:16]
                item.update(status="succeeded", url=f"https://images.example/{digest}.png")
        made = sum(item["status"] == "succeeded" for item in job.items)
        work.use(images=made)  # charged for these only; the rest of the hold is released
        job.status = "succeeded" if made else "failed"
    else:
        await asyncio.sleep(0.05)
        if job.steps > 5_000:
            job.status, job.error = "failed", "out of GPU memory"
        else:
            job.status = "succeeded"
            job.items = [{"status": "succeeded", "url": f"https://models.example/{job.id}.lora"}]
    await toll.settle(work, succeeded=job.status == "succeeded")


@app.post("/v1/batches", status_code=202)
async def queue_batch(batch: BatchIn, request: Request) -> JobOut:
    """Queue a batch: one image per prompt, each held; charged per image that succeeded."""
    need = Requirement("batch-generation", {"images": len(batch.prompts)})
    work = await authorize(request, toll, need)
    job = Job(f"job_{work.id}", work.customer_id, "batch", held_micros=work.held_micros,
              items=[{"prompt": p, "status": "queued"} for p in batch.prompts])  # fmt: skip
    return _queue(job, work)


lora_training = requires(toll, model="lora-training", features=["lora_training"])


@app.post("/v1/trainings", status_code=202)
async def queue_training(
    training: TrainingIn,
    work: Work = lora_training,
) -> JobOut:
    """Queue a LoRA training job: $2.00, charged when it succeeds."""
    job = Job(f"job_{work.id}", work.customer_id, "training", held_micros=work.held_micros,
              steps=training.steps)  # fmt: skip
    return _queue(job, work)


@app.get("/v1/jobs/{job_id}")
async def get_job(job_id: str, request: Request) -> JobOut:
    """A job of the caller's: 404 for anyone else's."""
    customer_id = await toll.customer_of(caller_key(request.scope))
    job = JOBS.get(job_id)
    if job is None or job.customer_id != customer_id:
        raise HTTPException(404, f"no job '{job_id}'")
    return _out(job)
