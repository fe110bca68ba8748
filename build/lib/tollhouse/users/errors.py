"""Users errors.

```
TollhouseError
└── UsersError                                  (family marker)
    ├── UserExists (409 user-exists)                 also a Conflict
    ├── UserNotFound (404 user-not-found)            also a NotFound
    ├── LoginFailed (401 login-failed)               wrong email or password, or disabled
    └── ResetLinkInvalid (400 reset-link-invalid)    unknown, used or expired link
```
"""

from __future__ import annotations

from tollhouse.errors import Conflict, NotFound, TollhouseError


class UsersError(TollhouseError):
    """Base of the users domain's errors."""


class UserExists(Conflict, UsersError):
    """Another user has this email."""

    status, code, title = 409, "user-exists", "User already exists"


class UserNotFound(NotFound, UsersError):
    """No user with that id or email."""

    status, code, title = 404, "user-not-found", "User not found"


class LoginFailed(UsersError):
    """The email and password do not match an enabled user (which one is not said)."""

    status, code, title = 401, "login-failed", "Wrong email or password"


class ResetLinkInvalid(UsersError):
    """The reset link is unknown, used or expired."""

    status, code, title = 400, "reset-link-invalid", "Reset link invalid"
