"""What tests and benchmarks share: a cluster of real processes
(``cluster``), temporary databases (``databases``), HTTP back ends
(``backends``), free ports and polling (``polling``).

Nothing in the service imports this package; ``tests/`` and ``bench/`` do,
and ``bench/`` imports nothing from ``tests/``.
"""
