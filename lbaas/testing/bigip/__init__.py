"""An emulator of F5 BIG-IP's iControl REST and AS3 APIs, written from F5's public
documentation, for testing the bigip driver without a device.

Python surface (``from lbaas.testing.bigip import BigIPEmulator, BigIPPair``)::

    emulator = BigIPEmulator(tls=True, username="admin", password="admin")
    emulator.start(); emulator.url            # https://127.0.0.1:<free port>
    emulator.certificate                      # PEM path to verify TLS with (None over http)
    emulator.stop()                           # also a context manager

    # knobs (thread-safe; also emulator.set(latency=..., ...))
    emulator.latency = 0.05                   # seconds added to every request
    emulator.task_duration = 0.5              # seconds an AS3 task stays "in progress"
    emulator.token_lifetime = 1200            # seconds a new token lives
    emulator.as3_installed = False            # /mgmt/shared/appsvcs/* answer 404
    emulator.ltm_provisioned = False          # provision level none; virtuals refused (422)
    emulator.fail_next(2, status=503, path=None)   # next requests (to path prefix) fail
    emulator.expire_tokens()                  # every token becomes unknown (401)
    emulator.go_away(); emulator.come_back()  # connection refused, then back on its port
    emulator.set_member_state("10.0.0.5", 80, "offline")   # available/offline/unknown/None
    emulator.set_default_member_state("offline")           # monitored members not forced
    emulator.set_counters("/T/A/serviceMain", **{"clientside.curConns": 3})

    # records
    emulator.declaration()                    # whole current declaration ({} when empty)
    emulator.declaration("T")                 # one tenant's content, None when absent
    emulator.history("T")                     # accepted contents in order (None = removed)
    emulator.calls("/mgmt/shared/appsvcs/declare", method="POST")   # request counts
    emulator.virtuals(); emulator.pools()     # LTM objects (ltm.Virtual, ltm.Pool)

    pair = BigIPPair(group="failover_group")  # two emulators in a sync-failover group
    pair.start(); pair.active; pair.standby; pair.failover(); pair.in_sync(); pair.syncs
    pair.certificate                          # one PEM both members serve; pair.first/.second
    pair.set(latency=0.05)                    # a knob on both members

HTTP surface (basic auth or ``X-F5-Auth-Token`` on everything but the login):

- ``POST /mgmt/shared/authn/login`` {username, password, loginProviderName} -> {"token":
  {"token", "timeout", ...}}; ``GET|PATCH {"timeout"}|DELETE /mgmt/shared/authz/tokens/<t>``.
  Unknown or expired token: 401 ``{"code": 401, "message": "X-F5-Auth-Token does not exist."}``;
  a user holding 100 live tokens gets 401 "maximum active login tokens" on login.
- ``GET /mgmt/tm/sys/version`` (nested ``entries``), ``/mgmt/tm/sys/provision[/ltm]``.
- ``GET /mgmt/shared/appsvcs/info``; ``POST /mgmt/shared/appsvcs/declare[/T1,T2][?async=true]``
  (an ADC declaration, or an AS3 request with action deploy/dry-run and syncToGroup);
  ``GET|DELETE /mgmt/shared/appsvcs/declare[/T1,T2]`` (GET: 204 when no tenant exists);
  ``PATCH /mgmt/shared/appsvcs/declare`` (JSON Patch); ``GET /mgmt/shared/appsvcs/task[/<id>]``.
  Sync answers 200 {results, declaration} (207 when some tenants failed, 422 when all
  did; 422 {errors: [first fault]} when the declaration is invalid); async answers 202
  {id, ...}, then the task reads "in progress" (code 0) until ``task_duration`` passed,
  then per-tenant results {"code": 200|422, "message": "success"|"no change"|
  "declaration failed", "tenant"}; the last 25 task records are kept (older: 404).
  Another declaration while a task runs: 503 (AS3 busy).  See ``schema`` for checks.
- Collections leave ``items`` out when empty, as iControl does; self links name
  ``https://localhost`` whatever address was called.
- ``GET /mgmt/tm/ltm/virtual[/~T~A~vs][/stats]``, ``/mgmt/tm/ltm/pool[/~T~A~p][/stats]``,
  ``/mgmt/tm/ltm/pool/~T~A~p/members[/~T~addr:port][/stats]``; ``$filter=partition eq T``,
  ``expandSubcollections=true``.  See ``ltm`` for names and availability.
- ``GET /mgmt/tm/cm/device`` (failoverState, selfDevice "true"/"false"),
  ``/mgmt/tm/cm/device-group[/~Common~g/devices]``, ``/mgmt/tm/cm/sync-status``,
  ``/mgmt/tm/cm/failover-status``; ``POST /mgmt/tm/cm`` {"command": "run", "utilCmdArgs":
  "config-sync to-group g"} copies this device's configuration to its peer.
  Declarations on a pair's standby are refused with 409 (a real standby would accept
  them and the group would show "Changes Pending": see ``device.refuse_standby_write``).

Not modelled: per-app declarations (``/declare/T/applications``), ``show=full``,
declaration ages, service discovery, burst handling, the 45 s sync-to-async swap.
"""

from lbaas.testing.bigip.emulator import BigIPEmulator, BigIPPair

__all__ = ["BigIPEmulator", "BigIPPair"]
