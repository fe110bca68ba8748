"""Workspaces (notebooks, GPU boxes) rented by the hour on a resource tier, billed by tollhouse
as metered sessions through the SDK: this service and tollhouse run apart, and talk HTTP.

- `POST /v1/workspaces {"tier": "small"}` starts a workspace for the caller (its tollhouse
  key): a metered session on that tier is started with the caller's key, so tollhouse checks
  the plan has the tier (403) and the wallet covers the minimum run (402) first.
- While a workspace runs, this service heartbeats its session every `HEARTBEAT_SECONDS`;
  tollhouse bills it by the second, holding one slice ahead, and ends the session when the
  wallet cannot pay the next slice. The next heartbeat then finds the session ended and the
  workspace is stopped (`stopped_reason`: the session's end reason, e.g. `credit`).
- `DELETE /v1/workspaces/{id}` stops it; `GET /v1/workspaces/{id}` shows it with the cost
  so far. A caller sees only its own workspaces.

The catalog is the `compute` preset (`tollhouse init --preset compute`); tollhouse's address
and an operator key come from `TOLLHOUSE_URL` and `TOLLHOUSE_API_KEY`.

Run: `TOLLHOUSE_URL=http://127.0.0.1:8080 TOLLHOUSE_API_KEY=th_live_... uvicorn app:app`
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from tollhouse import AsyncClient
from tollhouse.sdk import APIStatusError

HEARTBEAT_SECONDS = float(os.environ.get("WORKSPACE_HEARTBEAT_SECONDS", "30"))


@dataclass
class Workspace:
    id: str
    customer_id: str
    tier: str
    status: Literal["running", "stopped"] = "running"
    stopped_reason: str | None = None


WORKSPACES: dict[str, Workspace] = {}
"""Workspaces by id, each named after its session (in memory: a real service keeps them in
its database and starts real containers)."""

tollhouse = AsyncClient()  # TOLLHOUSE_URL, TOLLHOUSE_API_KEY (an operator key)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    heartbeats = asyncio.create_task(_heartbeat_forever())
    yield
    heartbeats.cancel()
    await tollhouse.close()


app = FastAPI(lifespan=lifespan)


@app.exception_handler(APIStatusError)
async def tollhouse_refused(request: Request, error: APIStatusError) -> JSONResponse:
    """tollhouse's refusal, passed on to the caller as it came (problem+json)."""
    body = {"type": error.type, "title": error.title, "status": error.status,
            "detail": error.detail, **error.extra}  # fmt: skip
    return JSONResponse(body, error.status, media_type="application/problem+json")


class WorkspaceIn(BaseModel):
    tier: Literal["small", "medium", "large", "xlarge"]


class WorkspaceOut(BaseModel):
    id: str
    tier: str
    status: str
    stopped_reason: str | None
    cost_micros: int
    """What tollhouse has billed so far (the final bill once stopped)."""
    paid_until: str | None


def _key(request: Request) -> str:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise HTTPException(401, "send your tollhouse key as 'Authorization: Bearer th_...'")
    return key


async def _customer(request: Request) -> str:
    """The caller's customer, as tollhouse knows its key (401 from tollhouse otherwise)."""
    return (await tollhouse.with_api_key(_key(request)).customers.retrieve("me")).id


async def _shown(workspace: Workspace) -> WorkspaceOut:
    session = await tollhouse.sessions.retrieve(workspace.id)
    return WorkspaceOut(
        id=workspace.id, tier=workspace.tier, status=workspace.status,
        stopped_reason=workspace.stopped_reason, cost_micros=session.cost_micros,
        paid_until=session.paid_until.isoformat() if session.paid_until else None,
    )  # fmt: skip


async def _own(request: Request, workspace_id: str) -> Workspace:
    workspace = WORKSPACES.get(workspace_id)
    if workspace is None or workspace.customer_id != await _customer(request):
        raise HTTPException(404, f"no workspace '{workspace_id}'")
    return workspace


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/workspaces", status_code=201)
async def start(body: WorkspaceIn, request: Request) -> WorkspaceOut:
    """Start a workspace: its metered session first (with the caller's key)."""
    session = await tollhouse.with_api_key(_key(request)).sessions.start(resource_tier=body.tier)
    workspace = Workspace(session.id, session.customer_id, body.tier)
    WORKSPACES[workspace.id] = workspace
    return await _shown(workspace)


@app.get("/v1/workspaces/{workspace_id}")
async def show(workspace_id: str, request: Request) -> WorkspaceOut:
    return await _shown(await _own(request, workspace_id))


@app.delete("/v1/workspaces/{workspace_id}")
async def stop(workspace_id: str, request: Request) -> WorkspaceOut:
    """Stop a workspace and its session (billed to the second)."""
    workspace = await _own(request, workspace_id)
    if workspace.status == "running":
        session = await tollhouse.sessions.terminate(workspace.id)
        workspace.status, workspace.stopped_reason = "stopped", session.end_reason
    return await _shown(workspace)


async def _heartbeat_forever() -> None:
    """Tell tollhouse every running workspace is alive; stop those whose session ended."""
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        for workspace in [w for w in WORKSPACES.values() if w.status == "running"]:
            try:
                session = await tollhouse.sessions.heartbeat(workspace.id)
                ended = session.status != "active"
            except APIStatusError:  # 402/409: the session ended (the wallet ran dry)
                session = await tollhouse.sessions.retrieve(workspace.id)
                ended = True
            if ended:  # a real service stops the container here
                workspace.status, workspace.stopped_reason = "stopped", session.end_reason
