"""The BIG-IP emulator (see ``lbaas.testing.bigip`` for its surface), runnable by hand:

    python -m lbaas.testing.bigip_emulator --port 8443 [--http] [--pair]

prints the URL(s) and the certificate to verify, and serves until interrupted.
"""

from __future__ import annotations

import argparse
import threading

from lbaas.runtime import Hook, Process
from lbaas.testing.bigip import BigIPEmulator, BigIPPair

__all__ = ["BigIPEmulator", "BigIPPair", "main"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve an emulated BIG-IP (iControl REST + AS3).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument("--http", action="store_true", help="plain HTTP instead of HTTPS")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--pair", action="store_true",
                        help="two devices in a sync-failover group (the second on port+1)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--task-duration", type=float, default=0.0, help="seconds an AS3 task runs")
    args = parser.parse_args(argv)
    options = {"host": args.host, "tls": not args.http, "username": args.username,
               "password": args.password}
    if args.pair:
        pair = BigIPPair(**options)
        if args.port:
            pair.first.port, pair.second.port = args.port, args.port + 1
        emulators = list(pair.members)
    else:
        emulators = [BigIPEmulator(port=args.port, **options)]
    for emulator in emulators:
        emulator.set(latency=args.latency, task_duration=args.task_duration)
    Process("bigip-emulator", [*emulators, Hook(start=lambda: _announce(emulators))]).run(threading.Event())


def _announce(emulators: list[BigIPEmulator]) -> None:
    for emulator in emulators:
        print(f"{emulator.name}: {emulator.url} ({emulator.device.failover_state})"
              + (f" certificate {emulator.certificate}" if emulator.certificate else ""), flush=True)


if __name__ == "__main__":
    main()
