"""The gateway domain: admission (scope, access, rate limit, hold), estimation, forwarding,
usage extraction and settlement of OpenAI-compatible calls. Framework-free: the HTTP routes
live in `api/routes/gateway.py`.

Invariants: a call is refused before the upstream is called whenever the key, plan, rate
limit or wallet says no; nothing is reserved for a refused call; every admitted call ends in
exactly one capture (real usage, capped at the hold) or one void (upstream failure), however
many of the model's fallback upstreams it tried (one hold, one rate-limit take); a call
is never recorded as free when the upstream omits usage (the delivered text is counted).
"""
