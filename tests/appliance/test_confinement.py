"""HAProxy confined: unprivileged workers in an empty chroot, and a rendered configuration
that cannot stray from the template's grammar even if validation were bypassed."""

import os
import pwd
from pathlib import Path

import pytest

from lbaas.appliance import grammar, render, schema
from lbaas.appliance.errors import ConfigRejected
from tests.appliance.helpers import answers, haproxy_pids, loadbalancer, member, monitor, url_of


def test_workers_run_unprivileged_in_an_empty_chroot(device, backends) -> None:
    assert os.geteuid() == 0, "the device tests run as root, as the appliance does"
    desired = loadbalancer([member(backends("a"))], healthmonitor=monitor())
    device.apply(desired)
    assert answers(url_of(desired), 2) == ["a", "a"]
    master = device.master_pid(desired["id"])
    workers = [pid for pid in haproxy_pids(device.state_dir) if pid != master]
    assert workers, "no HAProxy worker found"
    haproxy_uid = pwd.getpwnam("haproxy").pw_uid
    chroot = Path(device.state_dir, ".chroot").resolve()
    for pid in workers:
        status = Path(f"/proc/{pid}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        assert {int(u) for u in uids} == {haproxy_uid}, status
        assert Path(f"/proc/{pid}/root").resolve() == chroot
    assert not any(chroot.iterdir())


def _document() -> dict:
    return schema.validate({
        "id": "lb-1", "revision": 1, "vip_address": "127.0.9.5",
        "listeners": [{"id": "l-1", "protocol": "HTTP", "protocol_port": 80, "default_pool_id": "p-1",
                       "insert_headers": {"X-Forwarded-For": "true", "X-Forwarded-Port": "True",
                                          "X-Forwarded-Proto": "true"},
                       "allowed_cidrs": ["10.0.0.0/8", "127.0.0.1/32"]}],
        "pools": [{"id": "p-1", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                   "members": [{"id": "m-1", "address": "127.0.0.1", "protocol_port": 8080}],
                   "healthmonitor": {"type": "HTTP", "delay": 2, "timeout": 1, "max_retries": 2,
                                     "url_path": "/health", "http_version": "1.1",
                                     "domain_name": "www.example.com"}}]})


def test_every_rendered_line_is_in_the_grammar() -> None:
    text = render.render(_document(), "/s/stats.sock", "/s/state",
                         confinement=render.Confinement("haproxy", "haproxy", "/s/.chroot"))
    assert "acl allowed_cidr src 10.0.0.0/8 127.0.0.1/32" in text
    assert "option forwardfor" in text and "X-Forwarded-Proto http" in text
    assert "ver HTTP/1.1 hdr Host www.example.com" in text
    grammar.check(text)


@pytest.mark.parametrize("field, value", [
    ("address", "127.0.0.1:80\nprogram x\n    command /bin/sh -c id"),
    ("address", "::1%eth0:80"),
    ("url_path", "/x\n    external-check command /bin/true"),
    ("cookie_name", "a) \n    lua-load /tmp/x.lua"),
    ("url_path", "/${HOME}"),
    ("url_path", "/x # comment"),
    ("url_path", "/x%[env(HOME)]"),
])
def test_a_value_that_bypassed_validation_cannot_add_a_line(field: str, value: str) -> None:
    """Validation is skipped on purpose: the grammar alone must refuse the text."""
    context = render._context(_document(), "/s/stats.sock", "/s/state")
    backend = context["backends"][0]
    if field == "address":
        backend["servers"][0]["address"] = value
    elif field == "url_path":
        backend["monitor"]["url_path"] = value
    else:
        backend["persistence"], backend["cookie_name"] = "APP_COOKIE", value
    text = render._ENV.get_template(render.TEMPLATE_NAME).render(
        {**context, "bind_options": "", "run_as": None})
    assert value in text
    with pytest.raises(ConfigRejected):
        grammar.check(text)


def test_non_ascii_and_unknown_sections_are_refused() -> None:
    text = render.render(_document(), "/s/stats.sock", "/s/state")
    for extra in ("\nprogram evil\n    command /bin/sh\n", "\nbackend pool_x\n    lua-load /x\n",
                  "\nbackend pool_x\n    balance roundrobin\u200b\n", "\n    nbthread 1\n"):
        with pytest.raises(ConfigRejected):
            grammar.check(text + extra)
