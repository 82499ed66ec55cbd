"""Who may do what: oslo.policy with Octavia's rule names and defaults.

Contract:

- One ``Policy`` (one oslo.policy ``Enforcer``) per process, built from
  ``[api] policy_file``; every authentication strategy (Keystone, the token
  file, noauth) yields the same credentials (project, user, roles) and this
  one engine decides.
- Rule names are Octavia's (``os_load-balancer_api:<kind>:<action>`` on top of
  the ``load-balancer:*`` base rules), plus ours for the agents API
  (``os_load-balancer_api:agent:*``, admin only by default).
- Defaults are the secure-RBAC ones (``admin``, ``member``, ``reader``); the
  legacy roles (``load-balancer_admin``, ``load-balancer_member``,
  ``load-balancer_observer``, ``load-balancer_global_observer``,
  ``load-balancer_quota_admin``) are honoured through deprecated rules that
  oslo.policy ORs with the new ones (``enforce_new_defaults`` is off, as in an
  upgraded Octavia).
- A policy file (YAML) overrides any rule; oslo.policy compares the file's
  mtime on every check and re-reads it when it changed, so an edit takes
  effect on the next request without a restart.
- ``allowed`` never raises for a refusal; an unknown rule name is a
  programming error (``PolicyNotRegistered``), never a silent deny.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from typing import Protocol

from oslo_config import cfg
from oslo_policy import policy as oslo

from lbaas.config import ConfigError

LOG = logging.getLogger(__name__)

PREFIX = "os_load-balancer_api"
DEFAULT_FILE = "/etc/lbaas/policy.yaml"
MAX_DECISIONS = 100_000
REFUSED = "Policy does not allow this request to be performed."

ADMIN = "rule:load-balancer:admin"
READ = "rule:load-balancer:read"
READ_GLOBAL = "rule:load-balancer:read-global"
WRITE = "rule:load-balancer:write"
READ_QUOTA = "rule:load-balancer:read-quota"
READ_QUOTA_GLOBAL = "rule:load-balancer:read-quota-global"
WRITE_QUOTA = "rule:load-balancer:write-quota"

_LEGACY = "The load-balancer_* roles are superseded by Keystone's admin, member and reader roles."


def _legacy(name: str, check: str) -> oslo.DeprecatedRule:
    return oslo.DeprecatedRule(name=name, check_str=check, deprecated_reason=_LEGACY, deprecated_since="W")


def _base(name: str, check: str, description: str, legacy: str | None = None) -> oslo.RuleDefault:
    deprecated = _legacy(name, legacy) if legacy else None
    return oslo.RuleDefault(name=name, check_str=check, description=description, deprecated_rule=deprecated)


BASE_RULES = [
    _base("project-member", "role:member and project_id:%(project_id)s",
          "A member (secure RBAC) of the project that owns the target."),
    _base("project-reader", "role:reader and project_id:%(project_id)s",
          "A reader (secure RBAC) of the project that owns the target."),
    _base("context_is_admin", "role:admin", "An administrator: sees and changes every project's objects.",
          "role:admin or role:load-balancer_admin"),
    _base("load-balancer:owner", "project_id:%(project_id)s", "The caller's project owns the target."),
    _base("load-balancer:admin", "is_admin:True or role:admin", "Administrator of the load-balancer API.",
          "is_admin:True or role:admin or role:load-balancer_admin"),
    _base("service", "role:service", "Another OpenStack service."),
    _base("load-balancer:global_observer", "role:admin", "Reads every project's objects.",
          "role:load-balancer_global_observer"),
    _base("load-balancer:member_and_owner", "rule:project-member", "Reads and writes its project's objects.",
          "role:load-balancer_member and rule:load-balancer:owner"),
    _base("load-balancer:observer_and_owner", "rule:project-reader", "Reads its project's objects.",
          "role:load-balancer_observer and rule:load-balancer:owner"),
    _base("load-balancer:quota-admin", "role:admin", "Reads and sets every project's quotas.",
          "role:load-balancer_quota_admin"),
    _base("load-balancer:read",
          "rule:load-balancer:observer_and_owner or rule:load-balancer:global_observer or "
          "rule:load-balancer:member_and_owner or rule:load-balancer:admin",
          "May read the objects of the target's project."),
    _base("load-balancer:read-global", "rule:load-balancer:global_observer or rule:load-balancer:admin",
          "May read the objects of every project."),
    _base("load-balancer:write", "rule:load-balancer:member_and_owner or rule:load-balancer:admin",
          "May change the objects of the target's project."),
    _base("load-balancer:read-quota",
          "rule:load-balancer:observer_and_owner or rule:load-balancer:global_observer or "
          "rule:load-balancer:member_and_owner or rule:load-balancer:quota-admin or rule:load-balancer:admin",
          "May read the quota of the target's project."),
    _base("load-balancer:read-quota-global",
          "rule:load-balancer:global_observer or rule:load-balancer:quota-admin or rule:load-balancer:admin",
          "May read every project's quota."),
    _base("load-balancer:write-quota", "rule:load-balancer:quota-admin or rule:load-balancer:admin",
          "May set and reset quotas."),
]
BASE_NAMES = frozenset(rule.name for rule in BASE_RULES)

# kind in rule names -> (label in descriptions, collection path, item path)
KINDS = {
    "loadbalancer": ("Load Balancer", "/v2/lbaas/loadbalancers", "/v2/lbaas/loadbalancers/{loadbalancer_id}"),
    "listener": ("Listener", "/v2/lbaas/listeners", "/v2/lbaas/listeners/{listener_id}"),
    "pool": ("Pool", "/v2/lbaas/pools", "/v2/lbaas/pools/{pool_id}"),
    "member": ("Member", "/v2/lbaas/pools/{pool_id}/members", "/v2/lbaas/pools/{pool_id}/members/{member_id}"),
    "healthmonitor": ("Health Monitor", "/v2/lbaas/healthmonitors", "/v2/lbaas/healthmonitors/{healthmonitor_id}"),
    "l7policy": ("L7 Policy", "/v2/lbaas/l7policies", "/v2/lbaas/l7policies/{l7policy_id}"),
    "l7rule": ("L7 Rule", "/v2/lbaas/l7policies/{l7policy_id}/rules",
               "/v2/lbaas/l7policies/{l7policy_id}/rules/{l7rule_id}"),
}


def _api(name: str, check: str, description: str, method: str, path: str) -> oslo.DocumentedRuleDefault:
    return oslo.DocumentedRuleDefault(f"{PREFIX}:{name}", check, description, [{"method": method, "path": path}])


def _crud(kind: str) -> list[oslo.DocumentedRuleDefault]:
    label, many, one = KINDS[kind]
    return [
        _api(f"{kind}:get_all", READ, f"List {label}s", "GET", many),
        _api(f"{kind}:get_all-global", READ_GLOBAL, f"List {label}s of every project", "GET", many),
        _api(f"{kind}:post", WRITE, f"Create a {label}", "POST", many),
        _api(f"{kind}:get_one", READ, f"Show {label} details", "GET", one),
        _api(f"{kind}:put", WRITE, f"Update a {label}", "PUT", one),
        _api(f"{kind}:delete", WRITE, f"Remove a {label}", "DELETE", one),
    ]


def _extra() -> list[oslo.DocumentedRuleDefault]:
    lb = KINDS["loadbalancer"][2]
    quota = "/v2/lbaas/quotas/{project_id}"
    agent = "/v2/agents/{agent_id}"
    return [
        _api("loadbalancer:get_stats", READ, "Show Load Balancer statistics", "GET", lb + "/stats"),
        _api("loadbalancer:get_status", READ, "Show Load Balancer status", "GET", lb + "/status"),
        _api("loadbalancer:put_failover", ADMIN, "Failover a Load Balancer", "PUT", lb + "/failover"),
        _api("listener:get_stats", READ, "Show Listener statistics", "GET", KINDS["listener"][2] + "/stats"),
        _api("quota:get_all", READ_QUOTA, "List Quotas", "GET", "/v2/lbaas/quotas"),
        _api("quota:get_all-global", READ_QUOTA_GLOBAL, "List Quotas of every project", "GET", "/v2/lbaas/quotas"),
        _api("quota:get_one", READ_QUOTA, "Show Quota details", "GET", quota),
        _api("quota:put", WRITE_QUOTA, "Update a Quota", "PUT", quota),
        _api("quota:delete", WRITE_QUOTA, "Reset a Quota", "DELETE", quota),
        _api("quota:get_defaults", READ_QUOTA, "Show Default Quota for a Project", "GET", "/v2/lbaas/quotas/defaults"),
        _api("provider:get_all", READ, "List enabled providers", "GET", "/v2/lbaas/providers"),
        _api("provider-flavor:get_all", READ, "List the flavor capabilities of a provider", "GET",
             "/v2/lbaas/providers/{provider}/flavor_capabilities"),
        _api("provider-availability-zone:get_all", READ, "List the availability zone capabilities of a provider",
             "GET", "/v2/lbaas/providers/{provider}/availability_zone_capabilities"),
        _api("agent:get_all", ADMIN, "List agents", "GET", "/v2/agents"),
        _api("agent:get_status", ADMIN, "Show the agents' status: liveness, load, pending and ERROR counts",
             "GET", "/v2/agents/status"),
        _api("agent:get_one", ADMIN, "Show an agent, the load balancers it hosts, or a load balancer's agent",
             "GET", agent),
        _api("agent:put", ADMIN, "Enable or disable an agent", "PUT", agent),
        _api("agent:delete", ADMIN, "Remove an agent", "DELETE", agent),
        _api("agent:rebind", ADMIN, "Remove a dead agent and bind its load balancers to its peers",
             "DELETE", agent + "?rebind=true"),
        _api("dashboard:get", ADMIN, "Show the operator dashboard's data: agents, bindings, pending and ERROR",
             "GET", "/v2/dashboard"),
    ]


# The operator's catalogue: kind in rule names -> (label, collection path, item path, who reads).
CATALOGUE = {
    "flavor": ("Flavor", "/v2/lbaas/flavors", "/v2/lbaas/flavors/{flavor_id}", READ),
    "flavor-profile": ("Flavor Profile", "/v2/lbaas/flavorprofiles",
                       "/v2/lbaas/flavorprofiles/{flavor_profile_id}", ADMIN),
    "availability-zone": ("Availability Zone", "/v2/lbaas/availabilityzones",
                          "/v2/lbaas/availabilityzones/{availability_zone_name}", READ),
    "availability-zone-profile": ("Availability Zone Profile", "/v2/lbaas/availabilityzoneprofiles",
                                  "/v2/lbaas/availabilityzoneprofiles/{availability_zone_profile_id}", ADMIN),
}


def _catalogue(kind: str) -> list[oslo.DocumentedRuleDefault]:
    """Octavia's defaults: everyone reads flavors and zones, only admins their profiles; admins write."""
    label, many, one, read = CATALOGUE[kind]
    return [
        _api(f"{kind}:get_all", read, f"List {label}s", "GET", many),
        _api(f"{kind}:post", ADMIN, f"Create a {label}", "POST", many),
        _api(f"{kind}:get_one", read, f"Show {label} details", "GET", one),
        _api(f"{kind}:put", ADMIN, f"Update a {label}", "PUT", one),
        _api(f"{kind}:delete", ADMIN, f"Remove a {label}", "DELETE", one),
    ]


API_RULES = ([rule for kind in KINDS for rule in _crud(kind)] + _extra()
             + [rule for kind in CATALOGUE for rule in _catalogue(kind)]
             + [_api("amphora:get_all", ADMIN, "List Amphorae (always none here)", "GET", "/v2/octavia/amphorae")])
RULES: list[oslo.RuleDefault] = [*BASE_RULES, *API_RULES]


def full_name(rule: str) -> str:
    """``loadbalancer:post`` -> ``os_load-balancer_api:loadbalancer:post``; base rules stay as they are."""
    return rule if rule in BASE_NAMES or rule.startswith(PREFIX + ":") else f"{PREFIX}:{rule}"


class Caller(Protocol):
    """The credentials a decision depends on (``auth.Context`` is one); hashable."""

    @property
    def project_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def roles(self) -> frozenset[str]: ...
    @property
    def noauth(self) -> bool: ...

    def __hash__(self) -> int: ...


class Policy:
    """The process's one policy engine over the defaults and an optional policy file.

    oslo.policy spends about a third of a millisecond on each check (it
    inspects every check's signature each time), so decisions are memoized
    per (rule, target project, caller) until the rules change: a check here
    depends on nothing else (remote ``http:`` checks would be memoized too).
    """

    def __init__(self, policy_file: str = DEFAULT_FILE) -> None:
        conf = cfg.ConfigOpts()
        conf([], project="lbaas", default_config_files=[], default_config_dirs=[])
        # A file that does not exist (yet) means the defaults; oslo.policy
        # looks for it again on every check, so creating it later applies it.
        self._enforcer = oslo.Enforcer(conf, policy_file=os.path.abspath(policy_file))
        conf.set_override("enforce_new_defaults", False, group="oslo_policy")
        # The legacy roles are honoured on purpose; warning about them on
        # every (re)load would only fill the log.
        self._enforcer.suppress_deprecation_warnings = True
        self._enforcer.suppress_default_change_warnings = True
        self._enforcer.register_defaults(RULES)
        self._lock = threading.Lock()
        self._rules: object = None
        self._decisions: dict[tuple[str, str, Caller], bool] = {}
        self.path = os.path.abspath(policy_file)
        try:
            self._enforcer.load_rules()
        except Exception as exc:  # oslo.policy raises what its YAML parser or rule parser raise
            raise ConfigError(f"[api] policy_file {self.path} cannot be used: {exc}") from None

    def allowed(self, rule: str, target_project: str, caller: Caller) -> bool:
        with self._lock:  # oslo.policy's reload is not thread-safe
            self._reload()
            if self._enforcer.rules is not self._rules:
                self._decisions.clear()
                self._rules = self._enforcer.rules
            key = (rule, target_project, caller)
            decision = self._decisions.get(key)
            if decision is None:
                decision = self._decide(rule, target_project, caller)
                if len(self._decisions) >= MAX_DECISIONS:
                    self._decisions.clear()
                self._decisions[key] = decision
            return decision

    def reload(self) -> None:
        """Read the policy file again now (SIGHUP), even when its mtime did not change."""
        with self._lock:
            self._reload(force=True)

    def _reload(self, force: bool = False) -> None:
        """A stat; the file is read again when its mtime changed.  A broken edit of a running
        server's file keeps the rules in force (oslo.policy reads one version only once)."""
        try:
            self._enforcer.load_rules(force_reload=force)
        except Exception as exc:
            LOG.warning("policy file %s cannot be used; keeping the rules in force: %s", self.path,
                        " ".join(str(exc).split()))

    def _decide(self, rule: str, target_project: str, caller: Caller) -> bool:
        creds = {"project_id": caller.project_id, "user_id": caller.user_id, "roles": sorted(caller.roles),
                 "is_admin": caller.noauth}
        target = {"project_id": target_project}
        return bool(self._enforcer.authorize(full_name(rule), target, creds, do_raise=False))


_DEFAULT: Policy | None = None


def default() -> Policy:
    """The policy at ``DEFAULT_FILE``: for contexts made outside a server (tests, the CLI)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Policy()
    return _DEFAULT


def sample(rules: Iterable[oslo.RuleDefault] = RULES) -> str:
    """Every rule as a commented policy.yaml: description, operations, the default."""
    parts = ["# lbaas policy: uncomment a rule in policy.yaml to override its default.\n"]
    for rule in rules:
        lines = [f"# {line}".rstrip() for line in (rule.description or "").splitlines()]
        for operation in getattr(rule, "operations", ()):
            lines.append(f"# {operation['method']}  {operation['path']}")
        deprecated = rule.deprecated_rule
        if deprecated is not None:
            lines.append(f"# Legacy roles also pass (deprecated): {deprecated.check_str}")
        lines.append(f'#"{rule.name}": "{rule.check_str}"')
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)
