"""The TLS files of one load balancer: what HAProxy's ``crt``, ``crt-list``, ``ca-file`` and
``crl-file`` name, derived from the validated desired state.

Every file lives in the load balancer's ``tls`` folder (0700) and is written 0600: HAProxy's
master reads them as root while it parses the configuration (at start and at every reload),
before its workers drop their privileges and enter the chroot, so nothing unprivileged ever
needs them. Names come from ids only (a certificate's digest id, a listener's or pool's id),
so the same desired state always names the same files and the configuration text alone does
not show a change of content: ``differs`` does.

``files(desired, folder)`` maps each path to its text; ``write(folder, wanted)`` puts them in
place atomically (temporary file + rename) and returns an ``Undo``; ``prune(folder, wanted)``
removes what is no longer referenced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lbaas import wire

FOLDER = "tls"


def folder_of(root: Path) -> Path:
    """The TLS folder of the load balancer whose folder is ``root``."""
    return root / FOLDER


def certificate_file(folder: Path, certificate: wire.TLSCertificate) -> Path:
    """Certificate, intermediates and key in one file, as HAProxy's ``crt`` wants them."""
    return folder / f"cert_{certificate['id']}.pem"


def crt_list_file(folder: Path, listener_id: str) -> Path:
    """The SNI certificates of a listener, one path a line."""
    return folder / f"listener_{listener_id}.crtlist"


def ca_file(folder: Path, owner: str) -> Path:
    """``owner`` is ``listener_<id>`` or ``pool_<id>``."""
    return folder / f"{owner}_ca.pem"


def crl_file(folder: Path, owner: str) -> Path:
    return folder / f"{owner}_crl.pem"


def files(desired: wire.LoadBalancer, folder: Path) -> dict[Path, str]:
    """Every TLS file ``desired`` needs, path -> text."""
    out: dict[Path, str] = {}
    for listener in desired["listeners"]:
        tls = listener["tls"]
        if tls is not None:
            owner = f"listener_{listener['id']}"
            _certificate(out, folder, tls["default_certificate"])
            if tls["sni_certificates"]:
                for cert in tls["sni_certificates"]:
                    _certificate(out, folder, cert)
                out[crt_list_file(folder, listener["id"])] = "".join(
                    f"{certificate_file(folder, cert)}\n" for cert in tls["sni_certificates"])
            _authority(out, folder, owner, tls["client_ca"], tls["client_crl"])
    for pool in desired["pools"]:
        tls_pool = pool["tls"]
        if tls_pool is not None:
            if tls_pool["certificate"] is not None:
                _certificate(out, folder, tls_pool["certificate"])
            _authority(out, folder, f"pool_{pool['id']}", tls_pool["ca"], tls_pool["crl"])
    return out


def _certificate(out: dict[Path, str], folder: Path, cert: wire.TLSCertificate) -> None:
    out[certificate_file(folder, cert)] = "".join(
        [cert["certificate"], *cert["intermediates"], cert["private_key"]])


def _authority(out: dict[Path, str], folder: Path, owner: str, ca: str | None,
               crl: str | None) -> None:
    if ca is not None:
        out[ca_file(folder, owner)] = ca
    if crl is not None:
        out[crl_file(folder, owner)] = crl


def differs(wanted: dict[Path, str]) -> bool:
    """True when a file of ``wanted`` is missing or holds other text."""
    return any(_read(path) != text for path, text in wanted.items())


@dataclass
class Undo:
    """What ``write`` replaced: ``restore()`` puts it back (after a failed reload)."""

    previous: dict[Path, str | None] = field(default_factory=dict)

    def restore(self) -> None:
        for path, text in self.previous.items():
            if text is None:
                path.unlink(missing_ok=True)
            else:
                write_private(path, text)


def write(folder: Path, wanted: dict[Path, str]) -> Undo:
    """Write every file of ``wanted`` whose text differs; return how to undo it."""
    undo = Undo()
    if wanted:
        folder.mkdir(mode=0o700, exist_ok=True)
    for path, text in wanted.items():
        before = _read(path)
        if before != text:
            undo.previous[path] = before
            write_private(path, text)
    return undo


def prune(folder: Path, wanted: dict[Path, str]) -> None:
    """Remove every file of ``folder`` that ``wanted`` does not name."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path not in wanted:
            path.unlink(missing_ok=True)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file + rename), 0600 from the first
    byte: a key must never be readable by anybody else, not even for a moment."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a leftover might carry other permissions
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
