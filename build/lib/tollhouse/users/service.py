"""Users: create, sign in and out, server-side sessions, one-time password-reset links.

Passwords are hashed with Argon2id (`argon2-cffi`'s `PasswordHasher`, its default parameters:
RFC 9106's second recommended option, 64 MiB, 3 passes), off the event loop. Tokens (a
session's cookie, a reset link) are 256 random bits shown once; only their SHA-256 digest
is stored, as for API keys. Every function takes the caller's `AsyncSession` and never
commits.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.clock import Clock
from tollhouse.customers import service as customers
from tollhouse.errors import InvalidInput
from tollhouse.ids import new_id
from tollhouse.users.errors import LoginFailed, ResetLinkInvalid, UserExists, UserNotFound
from tollhouse.users.models import PasswordReset, Role, User, UserSession

SESSION_SECONDS = 12 * 3600
"""A dashboard session ends after this long without a request (sliding)."""
RESET_SECONDS = 24 * 3600
"""A reset link works for this long, once."""
MIN_PASSWORD = 10
MAX_PASSWORD = 1024

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))
"""Verified against when the email is unknown, so both answers take the same time."""


@dataclass(frozen=True, slots=True)
class UserView:
    """A user as the dashboard and the CLI show it (never its hash)."""

    id: str
    email: str
    role: Role
    customer_id: str | None
    time_zone: str
    disabled: bool
    created_at: datetime

    @property
    def is_operator(self) -> bool:
        return self.role == Role.OPERATOR

    @classmethod
    def of(cls, row: User) -> UserView:
        return cls(
            id=row.id,
            email=row.email,
            role=Role(row.role),
            customer_id=row.customer_id,
            time_zone=row.time_zone,
            disabled=row.disabled,
            created_at=row.created_at,
        )


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A session: the cookie's `token` (shown once) and the forms' `csrf_token`."""

    user: UserView
    token: str
    csrf_token: str
    expires_at: datetime


def digest(token: str) -> str:
    """SHA-256 hex of a token: what is stored of it."""
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_email(email: str) -> str:
    """`email` trimmed and lower-cased.

    Raises:
        InvalidInput: not `local@domain`, or longer than 320 characters.
    """
    cleaned = email.strip().lower()
    local, at, domain = cleaned.partition("@")
    if not (at and local and "." in domain and len(cleaned) <= 320) or " " in cleaned:
        raise InvalidInput(
            "email must look like name@example.com",
            errors=[{"loc": "email", "msg": "must look like name@example.com"}],
        )
    return cleaned


def check_password(password: str) -> str:
    """Raises InvalidInput unless `password` has `MIN_PASSWORD` to `MAX_PASSWORD` characters."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(
            f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters",
            errors=[{"loc": "password", "msg": f"needs at least {MIN_PASSWORD} characters"}],
        )
    return password


async def hash_password(password: str) -> str:
    """Argon2id PHC string of `password`, computed in a worker thread."""
    return await asyncio.to_thread(_hasher.hash, check_password(password))


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    role: Role,
    clock: Clock,
    password: str | None = None,
    customer_id: str | None = None,
    time_zone: str = "UTC",
) -> UserView:
    """A new user. Operators belong to no customer; members and admins to one. Without a
    `password` the user signs in after following a reset link (`issue_reset`).

    Raises:
        InvalidInput: a bad email or password, an operator with a customer, or a member
            without one.
        CustomerNotFound: no such customer.
        UserExists: the email is taken.
    """
    address = normalize_email(email)
    if (role == Role.OPERATOR) != (customer_id is None):
        raise InvalidInput(
            "operators belong to no customer; members and admins to one",
            errors=[{"loc": "customer_id", "msg": "required for member and admin only"}],
        )
    if customer_id is not None:
        await customers.get(session, customer_id)
    hashed = "" if password is None else await hash_password(password)
    if await session.scalar(select(User.id).where(User.email == address)) is not None:
        raise UserExists(f"a user with email {address!r} exists", email=address)
    row = User(
        id=new_id("usr"),
        email=address,
        password_hash=hashed,
        role=role.value,
        customer_id=customer_id,
        time_zone=time_zone,
        disabled=False,
        created_at=clock.now(),
    )
    session.add(row)
    await session.flush()
    return UserView.of(row)


async def get_user(session: AsyncSession, email: str) -> UserView:
    """The user with `email`.

    Raises:
        UserNotFound: none.
    """
    row = await session.scalar(select(User).where(User.email == email.strip().lower()))
    if row is None:
        raise UserNotFound(f"no user {email!r}")
    return UserView.of(row)


async def list_users(session: AsyncSession, *, customer_id: str | None = None) -> list[UserView]:
    """Users by email: one customer's, or all."""
    query = select(User).order_by(User.email)
    if customer_id is not None:
        query = query.where(User.customer_id == customer_id)
    return [UserView.of(row) for row in await session.scalars(query)]


async def authenticate(session: AsyncSession, email: str, password: str) -> UserView:
    """The enabled user whose email and password these are.

    Raises:
        LoginFailed: no such user, a wrong password, no password set, or disabled (the
            same answer, in about the same time, for each).
    """
    row = await session.scalar(select(User).where(User.email == email.strip().lower()))
    stored = row.password_hash if row is not None and row.password_hash else _DUMMY_HASH
    try:
        await asyncio.to_thread(_hasher.verify, stored, password)
    except (VerificationError, InvalidHashError):
        raise LoginFailed("wrong email or password") from None
    if row is None or not row.password_hash or row.disabled:
        raise LoginFailed("wrong email or password")
    if _hasher.check_needs_rehash(row.password_hash):
        row.password_hash = await asyncio.to_thread(_hasher.hash, password)
    return UserView.of(row)


async def sign_in(
    session: AsyncSession, user: UserView, *, clock: Clock, seconds: int = SESSION_SECONDS
) -> SignedIn:
    """A new session for `user` (after `authenticate`)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = clock.now()
    expires = now + timedelta(seconds=seconds)
    session.add(
        UserSession(
            digest=digest(token), user_id=user.id, csrf_token=csrf, created_at=now,
            expires_at=expires,
        )
    )  # fmt: skip
    await session.flush()
    return SignedIn(user, token, csrf, expires)


async def signed_in(
    session: AsyncSession, token: str, *, clock: Clock, seconds: int = SESSION_SECONDS
) -> SignedIn | None:
    """The live session of the cookie `token`, its expiry moved on; None when unknown,
    expired, or its user is disabled."""
    row = await session.get(UserSession, digest(token))
    now = clock.now()
    if row is None or row.expires_at <= now:
        return None
    user = await session.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    row.expires_at = now + timedelta(seconds=seconds)
    return SignedIn(UserView.of(user), token, row.csrf_token, row.expires_at)


async def sign_out(session: AsyncSession, token: str) -> None:
    """End the session of the cookie `token` (nothing if there is none)."""
    await session.execute(delete(UserSession).where(UserSession.digest == digest(token)))


async def issue_reset(
    session: AsyncSession, email: str, *, clock: Clock, seconds: int = RESET_SECONDS
) -> str:
    """A one-time reset link's token for the user with `email` (also how an invited user
    sets its first password).

    Raises:
        UserNotFound: no such user.
    """
    user = await get_user(session, email)
    token = secrets.token_urlsafe(32)
    session.add(
        PasswordReset(
            digest=digest(token), user_id=user.id,
            expires_at=clock.now() + timedelta(seconds=seconds), used_at=None,
        )
    )  # fmt: skip
    await session.flush()
    return token


async def reset_password(
    session: AsyncSession, token: str, password: str, *, clock: Clock
) -> UserView:
    """Set the password of the reset link `token`'s user, use the link up, and end the
    user's sessions.

    Raises:
        InvalidInput: the password is too short or too long.
        ResetLinkInvalid: unknown, used or expired link.
    """
    hashed = await hash_password(password)
    now = clock.now()
    used = await session.execute(
        update(PasswordReset)
        .where(
            PasswordReset.digest == digest(token),
            PasswordReset.used_at.is_(None),
            PasswordReset.expires_at > now,
        )
        .values(used_at=now)
        .returning(PasswordReset.user_id)
    )
    user_id = used.scalar_one_or_none()
    if user_id is None:
        raise ResetLinkInvalid("this reset link is unknown, used or expired")
    user = await session.get(User, user_id)
    assert user is not None
    user.password_hash = hashed
    await session.execute(delete(UserSession).where(UserSession.user_id == user_id))
    return UserView.of(user)
