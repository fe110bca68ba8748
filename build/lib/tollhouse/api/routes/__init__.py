"""Control API routers, one module per domain, plus the gateway's Starlette routes."""
