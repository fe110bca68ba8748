"""Users: dashboard logins (email + Argon2id password), their roles (`member` and `admin` of
a customer, `operator` of the installation), server-side sessions and one-time reset links.

Invariants:
- No password, session token or reset token is stored: an Argon2id hash, SHA-256 digests.
- A wrong email and a wrong password get the same answer (`LoginFailed`) in about the same
  time.
- A reset link works once, for `RESET_SECONDS`; using it ends the user's sessions.

Imports: customers, storage, clock.
"""

from tollhouse.users import service
from tollhouse.users.errors import (
    LoginFailed,
    ResetLinkInvalid,
    UserExists,
    UserNotFound,
    UsersError,
)
from tollhouse.users.models import Role
from tollhouse.users.service import SignedIn, UserView

__all__ = [
    "LoginFailed",
    "ResetLinkInvalid",
    "Role",
    "SignedIn",
    "UserExists",
    "UserNotFound",
    "UserView",
    "UsersError",
    "service",
]
