"""All load balancers of one device: their folders under the state directory and their
HAProxy processes.

The state directory is the only memory: one folder per load balancer holding desired.json
(the last state accepted, 0600: it holds private keys), haproxy.cfg (the configuration in
force), the TLS files it names (``tlsfiles``), the pid file, the sockets and the saved server
state. ``recover()`` rebuilds everything from it. ``get`` answers the desired state with every
private key redacted.

A change of TLS file content alone (a rotated certificate under the same id) reloads HAProxy
like a change of configuration: it is never "unchanged" nor a runtime-only change.

Changes to one load balancer are serialised by its own lock; different load balancers
proceed in parallel. A claim table of address:port pairs, updated under a short global
lock, keeps two load balancers from asking for the same listener endpoint.
"""

import copy
import grp
import ipaddress
import json
import logging
import os
import pwd
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lbaas import constants as c
from lbaas import metrics, wire
from lbaas.appliance import process, render, tlsfiles
from lbaas.appliance.errors import Conflict, DeviceFault, HAProxyFailure
from lbaas.appliance.process import HAProxyInstance, Paths
from lbaas.appliance.schema import ID_PATTERN, validate
from lbaas.appliance.status import status_document

LOG = logging.getLogger(__name__)

Endpoint = tuple[str, int]
# HAProxy's empty root, beside the load balancers' folders (which ids never start with '.').
CHROOT_DIR = ".chroot"
# What GET answers in place of a private key.
REDACTED = "<redacted>"


@dataclass
class _Entry:
    desired: wire.LoadBalancer
    instance: HAProxyInstance


def confinement(state_dir: Path, user: str) -> render.Confinement | None:
    """How HAProxy is confined: as root, its workers drop to ``user`` in an empty, root-owned
    directory; run by anybody else they are unprivileged already and cannot chroot.

    Raises ``HAProxyFailure`` when running as root and ``user`` does not exist.
    """
    if os.geteuid() != 0:
        return None
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise HAProxyFailure(f"haproxy_user {user!r} does not exist on this host; create it "
                             f"(the haproxy package does) or name another unprivileged user") from None
    if account.pw_uid == 0:
        raise HAProxyFailure(f"haproxy_user {user!r} is root; name an unprivileged user")
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    empty = state_dir / CHROOT_DIR
    empty.mkdir(mode=0o755, exist_ok=True)
    if any(empty.iterdir()):
        raise HAProxyFailure(f"{empty} must stay empty: it is HAProxy's chroot")
    return render.Confinement(user=user, group=grp.getgrgid(account.pw_gid).gr_name,
                              chroot=str(empty))


class Manager:
    """Owns the load balancers under ``state_dir``; every public method is thread-safe."""

    def __init__(self, state_dir: Path, haproxy_bin: str, transparent: bool = True,
                 user: str = "haproxy") -> None:
        """``transparent`` renders listener binds that work before the address is local
        (see ``DeviceConfig.bind_transparent``); ``user`` is who HAProxy's workers run as
        when this service runs as root (see ``confinement``)."""
        # Absolute: HAProxy runs in the load balancer's folder and is given these paths.
        self.state_dir = Path(state_dir).absolute()
        self.haproxy_bin = haproxy_bin
        self.transparent = transparent
        self.confinement = confinement(self.state_dir, user)
        self._registry = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._entries: dict[str, _Entry] = {}
        self._claims: dict[str, set[Endpoint]] = {}

    # --- queries -----------------------------------------------------------------------

    def list(self) -> list[wire.Held]:
        """``[{"id", "revision"}]`` of every load balancer held."""
        with self._registry:
            return [wire.Held(id=k, revision=e.desired["revision"])
                    for k, e in sorted(self._entries.items())]

    def get(self, lb_id: str) -> wire.LoadBalancer | None:
        """The desired state last accepted for ``lb_id`` with its private keys redacted,
        None if unknown."""
        with self._registry:
            entry = self._entries.get(lb_id)
        return redacted(entry.desired) if entry else None

    def status(self, lb_id: str) -> wire.StatusDocument | None:
        """The status document of ``lb_id`` (see ``status.py``), None if unknown."""
        with self._registry:
            entry = self._entries.get(lb_id)
        if entry is None:
            return None
        rows = None
        for attempt in range(2):  # a reload may swap the worker under us; ask once more
            try:
                rows = entry.instance.show_stat()
                break
            except OSError as exc:
                if attempt:
                    LOG.warning("stats of %s unavailable: %s", lb_id, exc)
                else:
                    time.sleep(0.1)
        return status_document(entry.desired, rows)

    # --- changes -------------------------------------------------------------------------

    def apply(self, desired: wire.LoadBalancer) -> wire.Applied:
        """Make the device hold exactly ``desired`` (validated); idempotent.

        Returns ``{"id", "revision", "applied"}``. Raises ``DeviceFault`` subclasses; on
        failure the previous configuration stays in force.
        """
        lb_id = desired["id"]
        with self._lock(lb_id):
            with self._registry:
                previous = self._entries.get(lb_id)
                self._claim(lb_id, desired)
            try:
                applied = self._converge(self._instance(lb_id), previous, desired)
            except Exception:
                metrics.APPLIANCE_APPLIES.labels("failed").inc()
                with self._registry:
                    self._release(lb_id, previous)
                raise
            with self._registry:
                self._entries[lb_id] = _Entry(desired, self._instance(lb_id))
        metrics.APPLIANCE_APPLIES.labels(applied).inc()
        LOG.info("load balancer %s revision %s: %s", lb_id, desired["revision"], applied)
        return wire.Applied(id=lb_id, revision=desired["revision"], applied=applied)

    def delete(self, lb_id: str) -> None:
        """Stop the HAProxy of ``lb_id`` and remove its folder; unknown ids are fine."""
        if not ID_PATTERN.fullmatch(lb_id):
            return  # cannot name a folder of ours, so there is nothing to delete
        with self._lock(lb_id):
            instance = self._instance(lb_id)
            instance.stop()
            shutil.rmtree(instance.paths.root, ignore_errors=True)
            with self._registry:
                self._entries.pop(lb_id, None)
                self._claims.pop(lb_id, None)
        LOG.info("load balancer %s deleted", lb_id)

    def recover(self) -> None:
        """Adopt every load balancer found under the state directory: keep a running
        HAProxy, start a dead one again from its saved configuration."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for folder in sorted(self.state_dir.iterdir()):
            if folder.is_dir() and ID_PATTERN.fullmatch(folder.name):
                self._recover_one(folder.name)

    def watchdog(self) -> None:
        """Start again every HAProxy that died (skips load balancers being changed)."""
        with self._registry:
            ids = list(self._entries)
        for lb_id in ids:
            lock = self._lock(lb_id)
            if not lock.acquire(blocking=False):
                continue
            try:
                with self._registry:
                    entry = self._entries.get(lb_id)
                if entry is not None and not entry.instance.is_running():
                    LOG.warning("haproxy of %s is not running; starting it again", lb_id)
                    self._restart(entry.instance)
                    metrics.APPLIANCE_RESTARTS.inc()
            except DeviceFault as exc:
                LOG.error("cannot restart haproxy of %s: %s", lb_id, exc)
            finally:
                lock.release()

    # --- internals ---------------------------------------------------------------------

    def _converge(self, instance: HAProxyInstance, previous: _Entry | None,
                  desired: wire.LoadBalancer) -> str:
        paths = instance.paths
        paths.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        tls = _tls_files(paths, desired)
        try:
            instance.check_paths()
            text = self._render(instance, desired)
            if not instance.is_running():
                applied = self._start(instance, previous, desired, text, tls)
            else:
                applied = self._change(instance, previous, desired, text, tls)
        except Exception:
            if previous is None:
                self._discard(instance)
            raise
        _save_desired(paths, desired)
        tlsfiles.prune(tlsfiles.folder_of(paths.root), tls)
        return applied

    def _change(self, instance: HAProxyInstance, previous: _Entry | None,
                desired: wire.LoadBalancer, text: str, tls: dict[Path, str]) -> str:
        """Bring a running HAProxy to ``text`` and ``tls``: nothing, runtime or reload."""
        current = instance.installed_config()
        # HAProxy reads the TLS files only when it loads its configuration.
        tls_changed = tlsfiles.differs(tls)
        if text == current and not tls_changed:
            return c.APPLIED_UNCHANGED
        if not tls_changed and previous and self._runtime(instance, previous.desired, desired,
                                                          text, current):
            return c.APPLIED_RUNTIME
        _check_endpoints_free(desired)
        self._reload(instance, text, tls)
        return c.APPLIED_RELOADED

    def _start(self, instance: HAProxyInstance, previous: _Entry | None, desired: wire.LoadBalancer,
               text: str, tls: dict[Path, str]) -> str:
        undo = tlsfiles.write(tlsfiles.folder_of(instance.paths.root), tls)
        try:
            instance.check(text)
            instance.stop()  # leftovers of a half-dead HAProxy would hold the ports
            _check_endpoints_free(desired)
        except DeviceFault:
            undo.restore()
            raise
        instance.install(text)
        try:
            instance.start()
        except HAProxyFailure:
            undo.restore()
            if previous is not None and instance.rollback():
                self._try_start(instance)
            raise
        _save_desired(instance.paths, desired)
        return c.APPLIED_STARTED

    def _runtime(self, instance: HAProxyInstance, old: wire.LoadBalancer, new: wire.LoadBalancer, text: str,
                 current: str | None) -> bool:
        """Apply a weight/admin-state-only change through the stats socket; False when the
        change needs a reload (or a runtime command failed, which a reload then repairs)."""
        probe = self._render(instance, render.with_runtime_values(new, old))
        if probe != current:
            return False
        instance.check(text)
        failures = instance.runtime(render.runtime_commands(old, new))
        if failures:
            LOG.warning("runtime change of %s failed, reloading instead: %s",
                        new["id"], "; ".join(failures))
            return False
        # The running process already matches; the file must too, for the next start.
        instance.install(text)
        return True

    def _reload(self, instance: HAProxyInstance, text: str, tls: dict[Path, str]) -> None:
        # The files first: ``haproxy -c`` and the new worker read them. The running worker
        # loaded its own copies and is not affected.
        undo = tlsfiles.write(tlsfiles.folder_of(instance.paths.root), tls)
        try:
            instance.check(text)
        except DeviceFault:
            undo.restore()
            raise
        instance.install(text)
        try:
            instance.reload()
        except HAProxyFailure:
            LOG.error("reload of %s failed; going back to the previous configuration",
                      instance.paths.root.name)
            undo.restore()
            instance.rollback()
            try:
                instance.reload()  # brings the master out of its failed-reload wait mode
            except HAProxyFailure as exc:
                LOG.error("reload with the previous configuration failed too: %s", exc)
            raise

    def _recover_one(self, lb_id: str) -> None:
        instance = self._instance(lb_id)
        if not instance.paths.desired.exists():
            # The first PUT never completed (desired.json is written last): it was never
            # acknowledged, so whatever it left behind goes.
            LOG.warning("removing %s: its first configuration never completed",
                        instance.paths.root)
            self._discard(instance)
            return
        try:
            desired = validate(json.loads(instance.paths.desired.read_text()))
        except (OSError, ValueError, DeviceFault) as exc:
            LOG.error("ignoring %s: no usable desired.json (%s)", instance.paths.root, exc)
            return
        with self._registry:
            self._entries[lb_id] = _Entry(desired, instance)
            self._claims[lb_id] = _endpoints(desired)
        if instance.is_running():
            LOG.info("adopted the running haproxy of %s", lb_id)
            return
        # A crash may have left the TLS files behind the desired state they belong to.
        tlsfiles.write(tlsfiles.folder_of(instance.paths.root), _tls_files(instance.paths, desired))
        if instance.installed_config() is None:
            instance.install(self._render(instance, desired))
        self._try_start(instance)

    def _restart(self, instance: HAProxyInstance) -> None:
        instance.stop()
        instance.start()

    def _try_start(self, instance: HAProxyInstance) -> None:
        try:
            self._restart(instance)
            LOG.info("started haproxy of %s from its saved configuration",
                     instance.paths.root.name)
        except DeviceFault as exc:
            LOG.error("cannot start haproxy of %s: %s", instance.paths.root.name, exc)

    def _discard(self, instance: HAProxyInstance) -> None:
        """Remove every trace of a load balancer whose first apply failed."""
        instance.stop()
        shutil.rmtree(instance.paths.root, ignore_errors=True)

    def _render(self, instance: HAProxyInstance, desired: wire.LoadBalancer) -> str:
        paths = instance.paths
        return render.render(desired, str(paths.stats_socket), str(paths.server_state),
                             transparent=self.transparent, confinement=self.confinement,
                             tls_folder=tlsfiles.folder_of(paths.root))

    def _instance(self, lb_id: str) -> HAProxyInstance:
        return HAProxyInstance(Paths(self.state_dir / lb_id), self.haproxy_bin)

    def _lock(self, lb_id: str) -> threading.Lock:
        with self._registry:
            return self._locks.setdefault(lb_id, threading.Lock())

    def _claim(self, lb_id: str, desired: wire.LoadBalancer) -> None:
        """Reserve the listener endpoints of ``desired``; caller holds ``_registry``."""
        wanted = _endpoints(desired)
        for other, endpoints in self._claims.items():
            if other == lb_id:
                continue
            for endpoint in wanted:
                if any(_overlap(endpoint, theirs) for theirs in endpoints):
                    # Not naming it: the message reaches a tenant who may not own it.
                    raise Conflict(f"{endpoint[0]}:{endpoint[1]} is already used by another "
                                   f"load balancer on this device")
        self._claims[lb_id] = wanted

    def _release(self, lb_id: str, previous: _Entry | None) -> None:
        """Undo a failed ``_claim``; caller holds ``_registry``."""
        if previous is None:
            self._claims.pop(lb_id, None)
        else:
            self._claims[lb_id] = _endpoints(previous.desired)


def _endpoints(desired: wire.LoadBalancer) -> set[Endpoint]:
    return {(desired["vip_address"], ln["protocol_port"]) for ln in desired["listeners"]}


def _check_endpoints_free(desired: wire.LoadBalancer) -> None:
    """Raise ``Conflict`` when a process other than this load balancer's HAProxy listens on
    one of its endpoints: HAProxy binds with SO_REUSEPORT and would otherwise silently share
    the port (and its traffic) with that process."""
    own = process.pids_serving(desired["id"])
    for address, port in sorted(_endpoints(desired)):
        if process.endpoint_in_use(address, port, own):
            raise Conflict(f"{address}:{port} is in use by another process on this host")


def _overlap(a: Endpoint, b: Endpoint) -> bool:
    """Same port and same address, or one of them listens on every address."""
    if a[1] != b[1]:
        return False
    return a[0] == b[0] or ipaddress.ip_address(a[0]).is_unspecified \
        or ipaddress.ip_address(b[0]).is_unspecified


def _save_desired(paths: Paths, desired: wire.LoadBalancer) -> None:
    # 0600 like the TLS files: it holds their private keys.
    tlsfiles.write_private(paths.desired, json.dumps(desired, indent=1, sort_keys=True))


def _tls_files(paths: Paths, desired: wire.LoadBalancer) -> dict[Path, str]:
    return tlsfiles.files(desired, tlsfiles.folder_of(paths.root))


def redacted(desired: wire.LoadBalancer) -> wire.LoadBalancer:
    """A copy of ``desired`` with every private key replaced by ``REDACTED``."""
    out = copy.deepcopy(desired)
    certificates = [cert for ln in out["listeners"] if ln["tls"]
                    for cert in [ln["tls"]["default_certificate"], *ln["tls"]["sni_certificates"]]]
    certificates += [p["tls"]["certificate"] for p in out["pools"]
                     if p["tls"] and p["tls"]["certificate"]]
    for cert in certificates:
        cert["private_key"] = REDACTED
    return out
