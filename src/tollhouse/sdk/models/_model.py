"""The base of the SDK's answer models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """An answer object: members as the server sent them (money in integer micros, durations
    in seconds, times as UTC-aware datetimes); members a newer server adds are kept, not
    refused."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())
