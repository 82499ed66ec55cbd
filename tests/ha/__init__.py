"""High-availability fault tests on private clusters (``pytest -m ha``)."""
