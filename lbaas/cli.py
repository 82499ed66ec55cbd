"""The ``lbaas`` command.

Contract: a configuration the command cannot run with (a file, a value, or what
it points to: database, broker, token file, HAProxy) ends the command with exit
code 2 and one line on standard error, ``lbaas: <what is wrong and where>``,
never a traceback and never a password.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from lbaas import __version__
from lbaas import config as cfg
from lbaas import constants as c
from lbaas import opscli


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lbaas", description="Load-balancer-as-a-service control plane.")
    parser.add_argument("--config-file", action="append", default=[], metavar="PATH",
                        help="INI file; repeatable, later files win")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config-file", action="append", default=[], dest="more_config_files",
                        metavar="PATH", help="INI file; repeatable, later files win")
    common.add_argument("--log-format", choices=["text", "json"], default="text",
                        help="text (default) or json: one JSON object per line (time, level, logger, "
                             "message, request_id)")
    sub = parser.add_subparsers(dest="command", required=True)
    add = lambda name, text: sub.add_parser(name, help=text, description=text, parents=[common])  # noqa: E731
    add("server", "run an API server and controller")
    agent = add("agent", "run an agent; with an action, list, show, set, delete agents or their load balancers")
    add("device", "run the HAProxy appliance: its management API, one HAProxy per load balancer")
    aio = add("all-in-one", "server, two agents and a device in one process (SQLite, memory://)")
    aio.add_argument("--demo", action="store_true", help="create a demo load balancer with two back ends")
    aio.add_argument("--data-plane", choices=["auto", "haproxy", "noop"], default="auto",
                     help="auto: HAProxy when installed, else noop (default)")
    db = add("db", "database schema")
    db.add_argument("action", choices=["upgrade", "current"])
    token = add("token", "API tokens in [api] token_file (stored hashed; a token is shown once, at create)")
    token.add_argument("action", choices=["create", "list", "revoke"])
    token.add_argument("id", nargs="?", help="revoke: the token's id (the part before the dot)")
    token.add_argument("--project", help="create: the token's project")
    token.add_argument("--role", default="member", choices=[*c.ROLES, *c.LEGACY_ROLES])
    token.add_argument("--expires-in", type=float, metavar="SECONDS", help="create: lifetime (default: none)")
    add("policy-sample", "print every policy rule with its default and description as policy.yaml")
    add("config-sample", "print an example configuration file")
    add("config-reference", "print every option as Markdown (docs/configuration.md)")
    opscli.add_commands(sub, agent)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if opscli.wanted(args):  # HTTP clients of the API: no configuration of their own
        return opscli.run(args)
    # Subcommands may carry --config-file after their name too.
    try:
        files = [*args.config_file, *args.more_config_files]
        return _run(args, cfg.load(files), files)
    except cfg.ConfigError as exc:  # start-up checks, the schema check included, raise it too
        print("lbaas: " + " ".join(str(exc).splitlines()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def _run(args: argparse.Namespace, config: cfg.Config, files: list[str]) -> int:
    from lbaas import service
    if args.command == "config-sample":
        print(cfg.sample())
        return 0
    if args.command == "config-reference":
        print(cfg.reference(), end="")
        return 0
    if args.command == "token":
        return _token(args, config.api.token_file)
    if args.command == "policy-sample":
        from lbaas.api import policy
        print(policy.sample())
        return 0
    if args.command == "db":
        from lbaas.db.session import Database
        service.check_database(config.database.connection)
        db = Database(config.database.connection)
        if args.action == "upgrade":
            db.upgrade()
        print(db.current_revision())
        return 0
    service.setup_logging(config, args.log_format)
    if args.command == "server":
        return service.run_server(config)
    if args.command == "agent":
        return service.run_agent(config)
    if args.command == "device":
        return service.run_device(config)
    if args.command == "all-in-one":
        from lbaas import allinone
        return allinone.run(files, demo=args.demo, data_plane=args.data_plane)
    return 2


def _token(args: argparse.Namespace, path: str) -> int:
    """create (prints the token, its only showing), list (never a secret) or revoke, in the file
    the server started with the same files reads."""
    from lbaas.api import tokens
    try:
        if args.action == "create":
            if not args.project:
                raise cfg.ConfigError("lbaas token create needs --project")
            print(tokens.create(path, args.project, args.role, args.expires_in))
        elif args.action == "list":
            print(f"{'id':16}  {'project':32}  {'roles':20}  {'created':25}  expires")
            for entry in tokens.read(path).values():
                expires = entry.expires.isoformat() if entry.expires else "never"
                print(f"{entry.id:16}  {entry.project_id:32}  {','.join(entry.roles):20}  "
                      f"{entry.created.isoformat():25}  {expires}")
        elif not args.id or not tokens.revoke(path, args.id):
            print(f"lbaas: no token with id {args.id!r} in {os.path.abspath(path)}", file=sys.stderr)
            return 1
    except (OSError, ValueError, TypeError) as exc:  # a corrupt file, a directory that cannot be made
        raise cfg.ConfigError(f"[api] token file {os.path.abspath(path)} cannot be updated: {exc}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
