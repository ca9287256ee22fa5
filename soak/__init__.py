"""Load and soak test: ``make soak`` (``python -m soak``), not part of ``make test``.

Real Envoy (demo/envoy_config.bootstrap) in front of authz (a real process, browser login on,
sessions in memory) and the echo upstream (a process of its own), with a mix of valid bearer
tokens, invalid ones, browser sessions and requests without credentials. It measures capacity
first, then holds ~70% of it for ten minutes, checking every answer: the status, and for an
allowed request the identity the upstream received. Everything listens on 127.0.0.1; the run is
bounded in time and in requests.
"""
