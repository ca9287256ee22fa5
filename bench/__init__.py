"""The authz benchmark: ``python -m bench`` (``make bench``).

Every figure is a ratio against a no-op floor server measured in the same run,
in interleaved rounds, because the machines this runs on are noisy.
"""
