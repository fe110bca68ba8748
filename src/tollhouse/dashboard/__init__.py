"""The dashboard: a customer portal and an operator console, server-rendered pages served by
tollhouse at `/dashboard` (Jinja2 templates and static files shipped in the package: no CDN,
no build step), over the same services the API uses.

- `web`: sign in and out, password reset, the session cookie and CSRF checks.
- `portal`: a customer's overview (balance, plan, quotas, usage, recent denials).
- `keys`: a customer's API keys (create with scopes, models and expiry; revoke; rotate).
- `sessions`: a customer's sessions (start flat or compute sessions, see them run, stop).
- `billing`: the portal's billing: buy packs, change plan, invoices, transactions (CSV).
- `console`: the operator's customers list and a customer's page (credits, keys, sessions,
  invoices, events); `console_accounts`: change a customer's plan, invite its users;
  `console_catalog`: the catalog in force; `analytics`: figures over a range of days.

Imports: users, customers, keys, sessions, events, ledger, subscriptions, metering, catalog,
billing, payments, server (the runtime), money.
"""

from tollhouse.dashboard import (
    analytics,
    billing,
    console,
    console_accounts,
    console_catalog,
    keys,
    portal,
    sessions,
)
from tollhouse.dashboard.web import STATIC, router

__all__ = [
    "STATIC",
    "analytics",
    "billing",
    "console",
    "console_accounts",
    "console_catalog",
    "keys",
    "portal",
    "router",
    "sessions",
]
