"""Run the benchmarks: ``make bench`` (= ``.venv/bin/python bench/run.py``).

    bench/run.py                  every benchmark (about 5 minutes)
    bench/run.py --quick          a short smoke run of every benchmark (about 70 s)
    bench/run.py --only list      one benchmark (repeatable, or comma-separated)

Each benchmark prints a table and writes ``bench/results/<name>.json``.
Needs PostgreSQL, MariaDB and RabbitMQ on 127.0.0.1 (``make services``).
See BENCHMARKS.md for what each figure means and the targets.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCHMARKS = {
    "api": "bench.bench_api",
    "list": "bench.bench_list",
    "cluster": "bench.bench_cluster",
    "scheduler": "bench.bench_scheduler",
    "failover": "bench.bench_failover",
    "dataplane": "bench.bench_dataplane",
    "l7": "bench.bench_l7",
    "tls": "bench.bench_tls",
    "auth": "bench.bench_auth",
    "bigip": "bench.bench_bigip",
    "scale": "bench.bench_scale",   # about 6 minutes alone (1,000 agents, 100,000 load balancers)
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short smoke run: fewer rounds, smaller sizes")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help=f"run only these ({', '.join(BENCHMARKS)}); repeatable or comma-separated")
    args = parser.parse_args(argv)
    names = [n.strip() for value in args.only for n in value.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")

    from bench.common import RESULTS, machine
    print(f"machine: {json.dumps(machine())}", flush=True)
    failed = []
    started = time.monotonic()
    for name in names:
        t0 = time.monotonic()
        print(f"\n--- {name} ---", flush=True)
        try:
            result = importlib.import_module(BENCHMARKS[name]).run(quick=args.quick)
        except KeyboardInterrupt:
            print(f"{name}: interrupted", file=sys.stderr)
            return 130
        except Exception:  # one broken benchmark must not hide the others
            traceback.print_exc()
            failed.append(name)
            continue
        result.finish()
        path = result.save()
        print(result.table())
        print(f"({name}: {time.monotonic() - t0:.0f} s; {path.relative_to(ROOT)})", flush=True)
    print(f"\nall done in {time.monotonic() - started:.0f} s; results in {RESULTS.relative_to(ROOT)}/")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
