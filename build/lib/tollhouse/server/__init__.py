"""The composition root: builds every service of one process from `Settings` and runs the ASGI app."""
