"""Imported at start-up by the ``openstack`` CLI the tests run (its PYTHONPATH names
this directory; see ``tests.api.test_clients.cli_env``).

``--wait`` polls every 3 s (python-octaviaclient's interval); a test server converges
in milliseconds, so most of a CLI test was spent asleep. Every sleep in that process is
capped at 0.1 s: the client and its requests stay unchanged, only its pauses shrink.
"""

import time

_sleep = time.sleep
CAP = 0.1


def _capped(seconds: float) -> None:
    _sleep(min(seconds, CAP))


time.sleep = _capped
