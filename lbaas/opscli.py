"""Operator commands of ``lbaas``: agents, bindings and the control plane's status, over
the HTTP API (admin rules ``os_load-balancer_api:agent:*``).

Contract: every command talks to ``--url`` (default ``http://127.0.0.1:9876``) with
``--token`` (default ``$LBAAS_TOKEN``, else ``$OS_AUTH_TOKEN``), prints a table, or the
API's document with ``-f json``, and exits 0. A refusal of the API exits 1 with
``lbaas: <status> <the API's faultstring>`` on standard error; an API that cannot be
reached exits 2 with one line. The token is never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_URL = "http://127.0.0.1:9876"
AGENT_COLUMNS = ("id", "host", "environment", "alive", "admin_state_up", "loadbalancer_count",
                 "heartbeat_timestamp")
LB_COLUMNS = ("id", "name", "project_id", "vip_address", "provisioning_status", "operating_status")
STATUS_AGENT_COLUMNS = ("host", "environment", "alive", "admin_state_up", "device_up", "loadbalancer_count",
                        "capacity_score")


class Refused(Exception):
    """The API answered with an error, or could not be reached (``code`` is the exit code)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def add_commands(sub: Any, agent: argparse.ArgumentParser) -> None:
    """Add ``agent <action>``, ``loadbalancer agent`` and ``status`` to the ``lbaas`` parser;
    ``agent`` without an action still runs an agent."""
    client = _client_options()
    actions = agent.add_subparsers(dest="agent_action", metavar="{list,show,set,delete,loadbalancers}",
                                   help="without an action: run an agent")
    add = lambda name, text: actions.add_parser(name, help=text, description=text, parents=[client])  # noqa: E731
    add("list", "list the agents with their liveness and load")
    add("show", "show one agent").add_argument("agent", help="the agent's id or host")
    changed = add("set", "enable or disable an agent (a disabled agent gets no new load balancers)")
    changed.add_argument("agent", help="the agent's id or host")
    state = changed.add_mutually_exclusive_group(required=True)
    state.add_argument("--enable", dest="admin_state_up", action="store_true", default=None,
                       help="let the scheduler place load balancers on it again")
    state.add_argument("--disable", dest="admin_state_up", action="store_false",
                       help="place no new load balancers on it; those it hosts stay")
    gone = add("delete", "remove a dead agent (an alive one is refused: it would register again)")
    gone.add_argument("agent", help="the agent's id or host")
    gone.add_argument("--rebind", action="store_true",
                      help="move its load balancers to the live agents of its environment and group")
    add("loadbalancers", "list the load balancers an agent hosts").add_argument("agent",
                                                                                help="the agent's id or host")
    text = "load balancers as an operator sees them"
    lbs = sub.add_parser("loadbalancer", help=text, description=text)
    lb_actions = lbs.add_subparsers(dest="lb_action", required=True)
    text = "show the agent a load balancer is bound to"
    hosting = lb_actions.add_parser("agent", help=text, description=text, parents=[client])
    hosting.add_argument("loadbalancer", help="the load balancer's id")
    text = "agents alive and dead per environment, load per agent, pending and ERROR load balancers"
    sub.add_parser("status", help=text, description=text, parents=[client])


def _client_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--url", default=DEFAULT_URL, help=f"the API's base URL (default {DEFAULT_URL})")
    options.add_argument("--token", default=None,
                         help="an admin token (default: $LBAAS_TOKEN, else $OS_AUTH_TOKEN)")
    options.add_argument("-f", "--format", choices=["table", "json"], default="table",
                         help="a human table (default) or the API's JSON document")
    return options


def wanted(args: argparse.Namespace) -> bool:
    """Whether the parsed command is one of these (and needs no configuration file)."""
    return args.command in ("loadbalancer", "status") or getattr(args, "agent_action", None) is not None


def run(args: argparse.Namespace) -> int:
    try:
        with _session(args) as http:
            if args.command == "status":
                document = _call(http, "GET", "/v2.0/agents/status")
                _emit(args, document, lambda: _status_table(document["status"]))
            elif args.command == "loadbalancer":
                _hosting(args, http)
            else:
                _agent(args, http)
    except Refused as exc:
        print(f"lbaas: {exc}", file=sys.stderr)
        return exc.code
    return 0


def _session(args: argparse.Namespace) -> httpx.Client:
    token = args.token or os.environ.get("LBAAS_TOKEN") or os.environ.get("OS_AUTH_TOKEN")
    if not token:
        raise Refused("no token: give --token or set LBAAS_TOKEN (or OS_AUTH_TOKEN)", code=2)
    return httpx.Client(base_url=args.url.rstrip("/"), headers={"X-Auth-Token": token}, timeout=30)


def _call(http: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    try:
        response = http.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise Refused(f"cannot reach the API at {http.base_url}: {exc}", code=2) from None
    if response.status_code >= 400:
        raise Refused(f"{response.status_code} {_fault(response)}")
    return response.json() if response.content else None


def _fault(response: httpx.Response) -> str:
    try:
        document = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(document, dict):
        return str(document.get("faultstring") or document.get("detail") or document)
    return str(document)


def _agent_id(http: httpx.Client, given: str) -> str:
    """An agent id, given its id or its host (a host in several environments needs the id)."""
    found = _call(http, "GET", "/v2.0/agents", params={"host": given})["agents"]
    if len(found) > 1:
        raise Refused(f"host {given} has agents in several environments; give one id: "
                      + ", ".join(agent["id"] for agent in found))
    return found[0]["id"] if found else given


def _agent(args: argparse.Namespace, http: httpx.Client) -> None:
    if args.agent_action == "list":
        document = _call(http, "GET", "/v2.0/agents")
        _emit(args, document, lambda: _table(AGENT_COLUMNS, document["agents"]))
        return
    path = "/v2.0/agents/" + quote(_agent_id(http, args.agent), safe="")
    if args.agent_action == "show":
        document = _call(http, "GET", path)
    elif args.agent_action == "set":
        document = _call(http, "PUT", path, json={"agent": {"admin_state_up": args.admin_state_up}})
    elif args.agent_action == "loadbalancers":
        document = _call(http, "GET", path + "/agent-loadbalancers")
        _emit(args, document, lambda: _table(LB_COLUMNS, document["loadbalancers"]))
        return
    else:
        _call(http, "DELETE", path, params={"rebind": "true"} if args.rebind else None)
        document = {"deleted": path.rsplit("/", 1)[1], "rebind": args.rebind}
        _emit(args, document, lambda: f"Deleted agent {document['deleted']}")
        return
    _emit(args, document, lambda: _fields(document["agent"]))


def _hosting(args: argparse.Namespace, http: httpx.Client) -> None:
    path = f"/v2.0/lbaas/loadbalancers/{quote(args.loadbalancer, safe='')}/loadbalancer-hosting-agent"
    document = _call(http, "GET", path)
    agent = document["agent"]
    _emit(args, document, lambda: "Bound to no agent" if agent is None else _fields(agent))


def _emit(args: argparse.Namespace, document: Any, table: Callable[[], str]) -> None:
    print(json.dumps(document, indent=2, sort_keys=True) if args.format == "json" else table())


def _cell(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)


def _table(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(column), *(len(line[i]) for line in cells)]) for i, column in enumerate(columns)]
    rule = "+" + "+".join("-" * (width + 2) for width in widths) + "+"
    line = lambda values: "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"  # noqa: E731
    return "\n".join([rule, line(columns), rule, *(line(values) for values in cells), rule])


def _fields(document: dict[str, Any]) -> str:
    return _table(("Field", "Value"), [{"Field": key, "Value": document[key]} for key in sorted(document)])


def _status_table(status: dict[str, Any]) -> str:
    counts = status["loadbalancers"]
    age = counts["oldest_pending_age"]
    summary = {"pending": counts["pending"], "error": counts["error"],
               "oldest_pending_age": "-" if age is None else f"{age} s"}
    return "\n".join([
        "Environments",
        _table(("environment", "agents", "alive", "dead", "loadbalancers"), status["environments"]),
        "Agents",
        _table(STATUS_AGENT_COLUMNS, status["agents"]),
        "Load balancers",
        _table(("pending", "error", "oldest_pending_age"), [summary]),
    ])
