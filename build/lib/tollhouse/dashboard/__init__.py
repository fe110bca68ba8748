"""The dashboard: a customer portal and an operator console, server-rendered pages served by
tollhouse at `/dashboard` (Jinja2 templates and static files shipped in the package: no CDN,
no build step), over the same services the API uses.

- `web`: sign in and out, password reset, the session cookie and CSRF checks.
- `portal`: a customer's overview (balance, plan, quotas, usage) and its API keys.
- `console`: the operator's customers list and a customer's page.

Imports: users, customers, keys, ledger, subscriptions, metering, catalog, server (the
runtime), money.
"""

from tollhouse.dashboard import console, portal
from tollhouse.dashboard.web import STATIC, router

__all__ = ["STATIC", "console", "portal", "router"]
