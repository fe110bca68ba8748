"""The dashboard: a customer portal and an operator console, server-rendered pages served by
tollhouse at `/dashboard` (Jinja2 templates and static files shipped in the package: no CDN,
no build step), over the same services the API uses.

- `web`: sign in and out, password reset, the session cookie and CSRF checks.
- `portal`: a customer's overview (balance, plan, quotas, usage) and its API keys.
- `console`: the operator's customers list and a customer's page (credits, keys, sessions,
  invoices, events); `console_accounts`: change a customer's plan, invite its users;
  `console_catalog`: the catalog in force; `analytics`: figures over a range of days.

Imports: users, customers, keys, ledger, subscriptions, metering, sessions, events, billing,
catalog, server (the runtime), money.
"""

from tollhouse.dashboard import analytics, console, console_accounts, console_catalog, portal
from tollhouse.dashboard.web import STATIC, router

__all__ = [
    "STATIC",
    "analytics",
    "console",
    "console_accounts",
    "console_catalog",
    "portal",
    "router",
]
