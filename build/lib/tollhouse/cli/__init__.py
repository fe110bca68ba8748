"""The `tollhouse` command: `serve`, `init`, `db`, and admin verbs over the services.

Every admin verb takes `--json` for scripts (one JSON document on stdout) and prints Rich
tables for people otherwise. Verbs talk to the database named by `TOLLHOUSE_DATABASE_URL`.
"""
