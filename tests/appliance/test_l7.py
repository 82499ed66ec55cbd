"""L7 policies and rules on the appliance: real HAProxy, real HTTP on loopback.

Routing by each rule type, each redirect action and code as the client sees it, REJECT,
inverted and disabled rules, position order; then validation (400 naming the field),
extremes that ``haproxy -c`` accepts, hostile values refused by the appliance with the
running configuration untouched, and the grammar refusing values that bypassed validation.
"""

import copy
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from lbaas import constants as c
from lbaas.appliance import grammar, render, schema
from lbaas.appliance.errors import ConfigRejected, InvalidRequest
from lbaas.testing.backends import Backend
from tests.appliance.helpers import HAPROXY, bump, fetch, loadbalancer, member, uid, url_of


def rule(kind: str, compare: str, value: str, key: str | None = None, **extra) -> dict:
    return {"id": uid("rule"), "type": kind, "compare_type": compare, "key": key,
            "value": value, "invert": False, "admin_state_up": True, **extra}


def policy(action: str, rules: list[dict], position: int, **extra) -> dict:
    return {"id": uid("policy"), "action": action, "position": position,
            "redirect_pool_id": None, "redirect_url": None, "redirect_prefix": None,
            "redirect_http_code": None, "admin_state_up": True, "rules": rules, **extra}


def add_pool(desired: dict, backend: Backend, protocol: str = "HTTP") -> str:
    """Add a pool (no listener's default) holding ``backend``; return its id."""
    pool_id = uid("pool")
    desired["pools"].append({
        "id": pool_id, "name": "", "protocol": protocol, "lb_algorithm": "ROUND_ROBIN",
        "admin_state_up": True, "session_persistence": None,
        "members": [member(backend)], "healthmonitor": None})
    return pool_id


def to_pool(pool_id: str, rules: list[dict], position: int, **extra) -> dict:
    return policy("REDIRECT_TO_POOL", rules, position, redirect_pool_id=pool_id, **extra)


def with_policies(desired: dict, *policies: dict) -> dict:
    desired["listeners"][0]["l7policies"] = list(policies)
    return desired


def body(desired: dict, path: str = "", **kwargs) -> str:
    response = fetch(url_of(desired) + path.lstrip("/"), **kwargs)
    assert response.status_code == 200, (response.status_code, response.text)
    return response.text


# --- traffic -------------------------------------------------------------------------------

def test_each_rule_type_routes_to_its_pool(device, backends) -> None:
    desired = loadbalancer([member(backends("default"))])
    pools = {name: add_pool(desired, backends(name))
             for name in ("host", "path", "file", "header", "cookie", "regex")}
    device.apply(with_policies(
        desired,
        to_pool(pools["host"], [rule("HOST_NAME", "EQUAL_TO", "api.example.com")], 1),
        to_pool(pools["path"], [rule("PATH", "STARTS_WITH", "/api")], 2),
        to_pool(pools["file"], [rule("FILE_TYPE", "EQUAL_TO", "jpg")], 3),
        to_pool(pools["header"], [rule("HEADER", "EQUAL_TO", "prod", key="X-Env")], 4),
        to_pool(pools["cookie"], [rule("COOKIE", "CONTAINS", "choc", key="flavour")], 5),
        to_pool(pools["regex"], [rule("PATH", "REGEX", "^/v[0-9]+/items$")], 6)))

    assert body(desired, "/") == "default"
    assert body(desired, "/", headers={"Host": "API.example.com:8080"}) == "host"
    assert body(desired, "/", headers={"Host": "www.example.com"}) == "default"
    assert body(desired, "/api/users") == "path"
    assert body(desired, "/v1/api") == "default"
    assert body(desired, "/img/cat.jpg") == "file"
    assert body(desired, "/img/cat.jpgx") == "default"
    assert body(desired, "/", headers={"X-Env": "prod"}) == "header"
    assert body(desired, "/", headers={"X-Env": "production"}) == "default"
    assert body(desired, "/", cookie="flavour=dark-choc-chip") == "cookie"
    assert body(desired, "/", cookie="other=choc") == "default"
    assert body(desired, "/v12/items") == "regex"
    assert body(desired, "/v12/items/1") == "default"


@pytest.mark.parametrize("code", c.L7POLICY_REDIRECT_CODES)
def test_redirects_reach_the_client_with_their_code(device, backends, code: int) -> None:
    desired = loadbalancer([member(backends("default"))])
    device.apply(with_policies(
        desired,
        policy("REDIRECT_TO_URL", [rule("PATH", "STARTS_WITH", "/moved")], 1,
               redirect_url="https://www.example.com/new?x=1", redirect_http_code=code),
        policy("REDIRECT_PREFIX", [rule("PATH", "STARTS_WITH", "/shop")], 2,
               redirect_prefix="http://shop.example.com:8080", redirect_http_code=code)))

    moved = fetch(url_of(desired) + "moved/page")
    assert (moved.status_code, moved.headers["location"]) == (
        code, "https://www.example.com/new?x=1")
    prefixed = fetch(url_of(desired) + "shop/cart?item=2")
    assert (prefixed.status_code, prefixed.headers["location"]) == (
        code, "http://shop.example.com:8080/shop/cart?item=2")
    assert body(desired, "/other") == "default"


def test_redirect_code_defaults_to_302(device, backends) -> None:
    desired = loadbalancer([member(backends("default"))])
    device.apply(with_policies(desired, policy(
        "REDIRECT_TO_URL", [rule("PATH", "EQUAL_TO", "/old")], 1,
        redirect_url="http://example.com")))

    assert fetch(url_of(desired) + "old").status_code == 302


def test_reject_and_inverted_rules(device, backends) -> None:
    desired = loadbalancer([member(backends("default"))])
    private = add_pool(desired, backends("private"))
    device.apply(with_policies(
        desired,
        policy("REJECT", [rule("PATH", "STARTS_WITH", "/admin"),
                          rule("HEADER", "EQUAL_TO", "yes", key="X-Admin", invert=True)], 1),
        to_pool(private, [rule("PATH", "STARTS_WITH", "/public", invert=True)], 2)))

    assert fetch(url_of(desired) + "admin/users").status_code == 403
    assert body(desired, "/admin/users", headers={"X-Admin": "yes"}) == "private"
    assert body(desired, "/public/index.html") == "default"
    assert body(desired, "/anything") == "private"


def test_positions_order_policies_of_one_kind(device, backends) -> None:
    desired = loadbalancer([member(backends("default"))])
    first, second = add_pool(desired, backends("first")), add_pool(desired, backends("second"))
    a = to_pool(first, [rule("PATH", "STARTS_WITH", "/api")], 1)
    b = to_pool(second, [rule("PATH", "CONTAINS", "pi")], 2)
    device.apply(with_policies(desired, b, a))  # listed out of order: positions decide
    assert body(desired, "/api/x") == "first"
    assert body(desired, "/pix") == "second"

    a["position"], b["position"] = 2, 1
    device.apply(bump(desired))
    assert body(desired, "/api/x") == "second"


def test_http_request_actions_act_before_redirect_to_pool(device, backends) -> None:
    """HAProxy runs http-request rules before use_backend: a REJECT at position 2 wins over
    a REDIRECT_TO_POOL at position 1 when both match (Octavia's amphora behaves the same)."""
    desired = loadbalancer([member(backends("default"))])
    pool_id = add_pool(desired, backends("pool"))
    device.apply(with_policies(
        desired, to_pool(pool_id, [rule("PATH", "STARTS_WITH", "/x")], 1),
        policy("REJECT", [rule("PATH", "ENDS_WITH", ".php")], 2)))

    assert fetch(url_of(desired) + "x/index.php").status_code == 403
    assert body(desired, "/x/index.html") == "pool"


def test_disabled_policies_and_rules_are_ignored(device, backends) -> None:
    desired = loadbalancer([member(backends("default"))])
    pool_id = add_pool(desired, backends("pool"))
    device.apply(with_policies(
        desired,
        policy("REJECT", [rule("PATH", "STARTS_WITH", "/")], 1, admin_state_up=False),
        policy("REJECT", [rule("PATH", "STARTS_WITH", "/", admin_state_up=False)], 2),
        policy("REJECT", [], 3),
        to_pool(pool_id, [rule("PATH", "STARTS_WITH", "/p"),
                          rule("PATH", "STARTS_WITH", "/never", admin_state_up=False)], 4)))

    assert body(desired, "/") == "default"
    assert body(desired, "/p/1") == "pool"


def test_proxy_pool_used_only_by_a_policy(device, backends) -> None:
    """A PROXY pool reached only through a policy is an http backend sending PROXY headers;
    its member is reported like any other."""
    desired = loadbalancer([member(backends("default"))])
    proxy_pool = add_pool(desired, backends("proxy"), protocol="PROXY")
    device.apply(with_policies(
        desired, to_pool(proxy_pool, [rule("PATH", "STARTS_WITH", "/p")], 1)))

    text = (device.folder(desired["id"]) / "haproxy.cfg").read_text()
    section = text[text.index(f"backend pool_{proxy_pool}"):]
    assert "mode http" in section and "send-proxy" in section
    status = device.status(desired["id"])
    assert [p["operating_status"] for p in status["pools"]] == ["ONLINE", "ONLINE"]
    assert status["listeners"][0]["operating_status"] == "ONLINE"


# --- validation ------------------------------------------------------------------------------

def base() -> dict:
    """A valid document (no HAProxy needed) with one policy of each action."""
    desired = loadbalancer([], address="127.0.9.7", port=80)
    desired["pools"][0]["id"] = "p-http"
    desired["listeners"][0]["default_pool_id"] = "p-http"
    desired["pools"].append(copy.deepcopy(desired["pools"][0]) | {"id": "p-other"})
    return with_policies(
        desired,
        to_pool("p-other", [rule("HEADER", "EQUAL_TO", "v", key="X-K")], 1),
        policy("REDIRECT_TO_URL", [rule("PATH", "EQUAL_TO", "/a")], 2,
               redirect_url="https://example.com/b"),
        policy("REDIRECT_PREFIX", [rule("COOKIE", "EQUAL_TO", "v", key="c")], 3,
               redirect_prefix="https://example.com"),
        policy("REJECT", [rule("FILE_TYPE", "REGEX", "^(php|cgi)$")], 4))


POLICY, RULE = ("listeners", 0, "l7policies", 0), ("listeners", 0, "l7policies", 0, "rules", 0)


def _set(document: dict, path: tuple, value) -> dict:
    target = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return document


@pytest.mark.parametrize("path, value, message", [
    ((*POLICY, "redirect_pool_id"), "p-missing", "is not in pools"),
    ((*POLICY, "redirect_pool_id"), None, "redirect_pool_id is required"),
    (("listeners", 0, "l7policies", 1, "redirect_url"), None, "redirect_url is required"),
    (("listeners", 0, "l7policies", 1, "redirect_url"), "ftp://x.com", "redirect_url must be"),
    (("listeners", 0, "l7policies", 2, "redirect_prefix"), "/relative", "redirect_prefix must"),
    (("listeners", 0, "l7policies", 1, "redirect_http_code"), 304, "redirect_http_code 304"),
    (("listeners", 0, "l7policies", 1, "position"), 1, "duplicate .*position"),
    ((*POLICY, "position"), 0, "position 0 is out of range"),
    ((*POLICY, "action"), "REDIRECT_TO_NOWHERE", "action 'REDIRECT_TO_NOWHERE' is unknown"),
    ((*POLICY, "id"), "p x", "id must match"),
    ((*RULE, "key"), None, r"rules\[0\] \(key, value\): a HEADER rule needs a key"),
    ((*RULE, "key"), "X K", "header name"),
    ((*RULE, "type"), "SSL_CERT", "type 'SSL_CERT' is unknown"),
    ((*RULE, "compare_type"), "LIKE", "compare_type 'LIKE' is unknown"),
    ((*RULE, "value"), "a b", "may not hold"),
    ((*RULE, "invert"), "yes", "invert must be true or false"),
    (("listeners", 0, "l7policies", 3, "rules", 0, "value"), "(php", "does not compile"),
    (("listeners", 0, "l7policies", 3, "rules", 0, "compare_type"), "CONTAINS", "EQUAL_TO or REGEX"),
    (("listeners", 0, "protocol"), "TCP", "only HTTP and TERMINATED_HTTPS listeners have L7"),
    (("pools", 1, "protocol"), "HTTPS", "cannot use pool p-other"),
])
def test_invalid_policies_are_refused(path: tuple, value, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        schema.validate(_set(base(), path, value))


def test_ids_are_unique_and_rules_limited() -> None:
    desired = base()
    policies = desired["listeners"][0]["l7policies"]
    policies[1]["rules"][0]["id"] = policies[0]["rules"][0]["id"]
    with pytest.raises(InvalidRequest, match="duplicate l7policies rules id"):
        schema.validate(desired)
    policies[1]["rules"][0]["id"], policies[1]["id"] = "fresh", policies[0]["id"]
    with pytest.raises(InvalidRequest, match="duplicate l7policies id"):
        schema.validate(desired)
    policies[1]["id"] = "fresh"
    policies[0]["rules"] = [rule("PATH", "EQUAL_TO", "/") for _ in range(51)]
    with pytest.raises(InvalidRequest, match="at most 50 rules"):
        schema.validate(desired)


def test_other_actions_fields_are_dropped() -> None:
    desired = base()
    desired["listeners"][0]["l7policies"][3] |= {
        "redirect_pool_id": "p-missing", "redirect_url": "bad url", "redirect_http_code": 1}
    reject = schema.validate(desired)["listeners"][0]["l7policies"][3]
    assert (reject["redirect_pool_id"], reject["redirect_url"], reject["redirect_http_code"]) == (
        None, None, None)


# --- rendering ------------------------------------------------------------------------------

def _config(desired: dict) -> str:
    return render.render(schema.validate(desired), "/tmp/lbd-x/stats.sock", "/tmp/lbd-x/state")


def _haproxy_check(text: str, folder: Path) -> None:
    config = folder / "haproxy.cfg"
    config.write_text(text)
    result = subprocess.run([HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendered_policies(tmp_path) -> None:
    desired = base()
    rules = desired["listeners"][0]["l7policies"][0]["rules"]
    rules[0]["id"], rules[0]["invert"] = "r-h", True
    text = _config(desired)

    assert "acl rule_r-h req.hdr(X-K) -m str -- v\n" in text
    assert "    use_backend pool_p-other if !rule_r-h\n" in text
    assert " -m reg -- ^(php|cgi)$\n" in text
    assert "http-request redirect location https://example.com/b code 302 if rule_" in text
    assert "http-request redirect prefix https://example.com code 302 if rule_" in text
    assert "http-request deny deny_status 403 if rule_" in text
    # use_backend after every http-request rule, and before default_backend.
    assert text.rindex("http-request") < text.index("use_backend") < text.index("default_backend")
    _haproxy_check(text, tmp_path)


def _extremes() -> dict:
    """Every L7 field at its allowed extremes: longest ids and values, every character of
    each allow-list, 50 inverted rules, the highest position."""
    desired = base()
    long_id = lambda n: f"{n:02d}" + "x" * 62  # noqa: E731
    regex = "^/[A-Za-z0-9._~!&()*+,;=:@/?-]{0,9}(a|b){1,2}<>"
    rules = [rule("PATH", "REGEX", regex + "x" * (1023 - len(regex)) + "$",
                  id=long_id(i), invert=True) for i in range(50)]
    rules[0] = rule("HOST_NAME", "ENDS_WITH", "*." + "a" * 63 + "." + "b" * 186, id=long_id(0))
    rules[1] = rule("HEADER", "CONTAINS", "A-Za-z0-9-._~!&()*+,;=:@/?<>|^" + "h" * 994,
                    key="h" * 32 + "-_.!*+^|~" + "k" * 23, id=long_id(1))
    rules[2] = rule("COOKIE", "STARTS_WITH", "-._~!&()*+,:@/?=" + "c" * 1008,
                    key="c" * 64, id=long_id(2))
    rules[3] = rule("FILE_TYPE", "EQUAL_TO", "F_-" + "f" * 61, id=long_id(3))
    rules[4] = rule("PATH", "EQUAL_TO", "/-._~!&()*+,;=:@?" + "p" * 1007, id=long_id(4))
    url = ("https://" + ".".join(["a" * 63] * 3 + ["b" * 61]) + ":65535/"
           + "-._~!&()*+,;=:@/?" + "u" * 1983)
    policies = desired["listeners"][0]["l7policies"]
    policies[1] |= {"redirect_url": url, "redirect_http_code": 308, "rules": rules,
                    "position": 2 ** 31 - 1, "id": "p" * 64}
    policies[2] |= {"redirect_prefix": "http://[fd00:0:0:0:0:0:0:1]:1", "redirect_http_code": 301}
    return desired


def test_extremes_pass_haproxy(tmp_path) -> None:
    text = _config(_extremes())
    assert "code 308 if rule_00" in text and f" !rule_{'49' + 'x' * 62}\n" in text
    _haproxy_check(text, tmp_path)


HOSTILE = ["a\nb", "/x\n    bind :22", "/x\"y", "/x'y", "/x#y", "/x\\y", "/x\x00y",
           "/" + "a" * 65536, "/\u00e9t\u00e9", "/\u0661", "/${HOME}", "/%[env(HOME)]",
           "/x y", "/x\ty", "/x\r\ny"]
HOSTILE_FIELDS: list[tuple[tuple, Callable[[str], str]]] = [
    ((*RULE, "value"), lambda v: v),
    ((*RULE, "key"), lambda v: v.lstrip("/") or v),
    (("listeners", 0, "l7policies", 2, "rules", 0, "key"), lambda v: v.lstrip("/") or v),
    (("listeners", 0, "l7policies", 3, "rules", 0, "value"), lambda v: "^" + v),
    (("listeners", 0, "l7policies", 1, "redirect_url"), lambda v: "https://example.com" + v),
    (("listeners", 0, "l7policies", 2, "redirect_prefix"), lambda v: "https://example.com" + v),
    ((*POLICY, "redirect_pool_id"), lambda v: "p-other" + v),
    ((*RULE, "id"), lambda v: "r" + v),
    ((*POLICY, "id"), lambda v: "p" + v),
]


@pytest.fixture
def running(device) -> tuple:
    """The device running ``base()`` (no members needed); (device, document, haproxy.cfg)."""
    desired = base()
    desired["vip_address"] = loadbalancer([])["vip_address"]
    desired["listeners"][0]["protocol_port"] = 8080
    device.apply(desired)
    return device, desired, (device.folder(desired["id"]) / "haproxy.cfg").read_bytes()


@pytest.mark.parametrize("path, wrap", HOSTILE_FIELDS, ids=lambda x: ".".join(map(str, x))
                         if isinstance(x, tuple) else "")
def test_hostile_values_are_refused_and_change_nothing(running, path: tuple, wrap) -> None:
    device, desired, before = running
    for value in HOSTILE:
        response = device.put(_set(bump(copy.deepcopy(desired)), path, wrap(value)))
        assert response.status_code == 400, (repr(value), response.text)
        assert response.json()["faultcode"] == "Client"
        assert (device.folder(desired["id"]) / "haproxy.cfg").read_bytes() == before


def _bypassing(field: str, value: str) -> str:
    """The template rendered with one L7 value set behind validation's back."""
    context = render._context(schema.validate(base()), "/s/stats.sock", "/s/state")
    frontend = context["frontends"][0]
    if field in ("value", "fetch"):
        frontend["acls"][0][field] = value
    else:
        frontend["policies"][1][field] = value
    return render._ENV.get_template(render.TEMPLATE_NAME).render(
        {**context, "bind_options": "", "run_as": None})


@pytest.mark.parametrize("field, value", [
    ("value", "v\n    bind :22"), ("value", "v # c"), ("value", "${HOME}"),
    ("value", "%[env(HOME)]"), ("value", "v w"), ("value", '"v"'), ("value", "a\\b"),
    ("fetch", "req.hdr(a b)"), ("fetch", "env(HOME)"),
    ("location", "https://x.com/\n    lua-load /tmp/x.lua"), ("location", "/relative"),
    ("location", "https://x.com/${HOME}"), ("location", "https://x.com/%[env(HOME)]"),
    ("code", "302 if TRUE\n    program x"), ("code", "200"),
    ("condition", "rule_a or TRUE"), ("condition", "TRUE"),
])
def test_a_value_that_bypassed_validation_is_refused_by_the_grammar(field: str, value: str) -> None:
    text = _bypassing(field, value)
    assert value in text
    with pytest.raises(ConfigRejected):
        grammar.check(text)
