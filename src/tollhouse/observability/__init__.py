"""What a tollhouse process tells its operator: Prometheus metrics and structured logs.

- `metrics`: every metric family (served at `/metrics`, `api.routes.metrics`), and the
  functions and listeners that move them. The core domains know nothing of Prometheus: the
  runtime hands these listeners to the ledger, the usage recorder, the denial log and the
  webhook worker (`watch...`); the edges (`api`, `gateway`) call the functions.
- `multiprocess`: the directory `serve --workers N` shares between its processes.
- `logs`: structlog over the standard library's logging, JSON lines or rendered lines.
- `context`: the request being handled (its id, for logs, headers and metrics).

Imports nothing of tollhouse's but `ids` (and, for types, `ledger`): every layer above the
ground may use it.
"""
