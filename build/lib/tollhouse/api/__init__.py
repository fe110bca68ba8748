"""The HTTP edge: the control API (FastAPI) and the gateway's OpenAI-compatible routes.

Routes are thin: parse, check the principal, call one service, render. Errors become
problem+json only in `problems.py`.
"""
