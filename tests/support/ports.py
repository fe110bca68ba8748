"""Ports for servers a test starts as separate processes (which bind the port themselves)."""

from __future__ import annotations

import random
import socket

PORTS = range(20_000, 32_000)
"""Below Linux's default ephemeral range (32768-60999). A port the kernel picks for `bind(0)`
comes from that range, which every outgoing connection of every test worker also draws from:
between choosing it and the server binding it, a client socket may take it."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now, from `PORTS`."""
    while True:
        port = random.choice(PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
