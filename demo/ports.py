"""Picking a port to listen on, for the demo and the tests."""

from __future__ import annotations

import random
import socket


def free_port() -> int:
    """A port to listen on, chosen below the kernel's ephemeral range (32768+).

    bind(0) hands out ephemeral ports, which the kernel also gives to outgoing
    connections: a port picked that way can be taken by some client before the server
    binds it. Random ports from 20000-32000 do not collide with those.
    """
    for _ in range(200):
        port = random.randrange(20000, 32000)  # noqa: S311 (a port, not a secret)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")
