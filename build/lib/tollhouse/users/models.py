"""Dashboard users, their login sessions and their one-time password-reset links.

- `users`: a login (unique lower-cased email, Argon2id hash), its `role` and, for `member`
  and `admin`, the customer it belongs to; `operator`s belong to none.
- `user_sessions`: a signed-in browser: only the SHA-256 digest of the cookie's token is
  stored, with the session's CSRF token and its expiry.
- `password_resets`: a one-time link's token digest, its expiry and when it was used.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from tollhouse.storage.base import Base, UTCDateTime


class Role(StrEnum):
    """What a user may do (DESIGN.md's `user`)."""

    MEMBER = "member"
    """Reads its customer's portal, manages its own keys and sessions."""
    ADMIN = "admin"
    """A member who also buys, changes the plan and invites users of its customer."""
    OPERATOR = "operator"
    """Runs the installation: the console, every customer."""


class User(Base):
    """A dashboard login."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """`usr_<22 base62>`."""
    email: Mapped[str] = mapped_column(String(320), unique=True)
    """Lower-cased; the login name."""
    password_hash: Mapped[str] = mapped_column(String(255))
    """Argon2id, PHC string (`$argon2id$v=19$...`); "" until a reset link sets one."""
    role: Mapped[str] = mapped_column(String(16))
    """A `Role` value."""
    customer_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("customers.id"), index=True
    )
    """The customer of a member or admin; None for an operator."""
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    """IANA zone the dashboard shows times in."""
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    """A disabled user cannot sign in; its sessions end."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the user was created (UTC)."""


class UserSession(Base):
    """A signed-in browser."""

    __tablename__ = "user_sessions"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    """SHA-256 hex of the cookie's token (the token itself is never stored)."""
    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id"), index=True)
    """Who signed in."""
    csrf_token: Mapped[str] = mapped_column(String(64))
    """The token every form of this session must send back."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When it signed in (UTC)."""
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When it ends unless used again (sliding; UTC)."""


class PasswordReset(Base):
    """A one-time link that sets a user's password."""

    __tablename__ = "password_resets"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    """SHA-256 hex of the link's token."""
    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id"), index=True)
    """Whose password it sets."""
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When it stops working (UTC)."""
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When it was used; a used link works no more."""
