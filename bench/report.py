"""Markdown tables from ``bench/results/*.json`` (for BENCHMARKS.md):

    .venv/bin/python bench/report.py [NAME ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, describe  # noqa: E402

ORDER = ("api", "list", "cluster", "scheduler", "failover", "dataplane", "l7")


def table(doc: dict) -> str:
    busy = doc.get("busy", {})
    head = (f"### {doc['benchmark']}" + (" (quick)" if doc.get("quick") else "") + "\n\n"
            f"Run {doc['started'][:16].replace('T', ' ')} UTC at commit {doc.get('commit', '?')}, "
            f"{doc['duration_s']:.0f} s; CPU during the run: "
            f"this run {busy.get('mine_cores', float('nan')):.2f} cores, services "
            f"{busy.get('services_cores', float('nan')):.2f}, other people's work "
            f"{busy.get('foreign_cores', float('nan')):.2f}.\n\n"
            "| case | metric | value | target | met |\n|---|---|---|---|---|\n")
    lines = []
    for row in doc["rows"]:
        met = "" if row["met"] is None else ("yes" if row["met"] else "**no**")
        lines.append(f"| {row['case']} | {row['metric']} | {describe(row)} | {row['target'] or ''} | {met} |")
    notes = "".join(f"\n- {n}" for n in doc.get("notes", []))
    return head + "\n".join(lines) + ("\n" + notes if notes else "") + "\n"


def main(names: list[str]) -> int:
    for name in names or ORDER:
        path = RESULTS / f"{name}.json"
        if path.exists():
            print(table(json.loads(path.read_text())))
        else:
            print(f"### {name}\n\n(no results: run bench/run.py --only {name})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
