"""What tests and benchmarks share: a cluster of real processes
(``cluster``), temporary databases (``databases``), HTTP back ends
(``backends``), free ports and polling (``polling``), an emulated F5 BIG-IP
(``bigip``; ``python -m lbaas.testing.bigip_emulator`` serves one by hand).

Nothing in the service imports this package; ``tests/`` and ``bench/`` do,
and ``bench/`` imports nothing from ``tests/``.
"""
