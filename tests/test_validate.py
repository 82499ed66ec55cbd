"""The closed forms of lbaas.validate, on their own (the API and appliance suites use them
through their own layers)."""

import pytest

from lbaas import validate


@pytest.mark.parametrize("value, canonical", [
    ("127.0.0.1", "127.0.0.1"), ("fd00:0::1", "fd00::1"), ("::1", "::1")])
def test_addresses_are_canonical(value: str, canonical: str) -> None:
    assert validate.ip_address(value) == canonical


@pytest.mark.parametrize("value", [
    "::1%eth0", "::1%\nprogram x", "0.0.0.0", "::", "224.0.0.1", "255.255.255.255",
    "::ffff:127.0.0.1", " 127.0.0.1", "127.0.0.1\n", "127.1", "0x7f.0.0.1", "1.2.3.4/32"])
def test_addresses_refused(value: str) -> None:
    with pytest.raises(ValueError):
        validate.ip_address(value)


@pytest.mark.parametrize("rule, expected", [
    (("PATH", "STARTS_WITH", None, "/api"), (None, "/api")),
    (("HOST_NAME", "EQUAL_TO", None, "www.example.com"), (None, "www.example.com")),
    (("FILE_TYPE", "EQUAL_TO", None, "jpg"), (None, "jpg")),
    (("HEADER", "CONTAINS", "X-Env", "prod"), ("X-Env", "prod")),
    (("COOKIE", "EQUAL_TO", "session", "abc=1"), ("session", "abc=1")),
    (("PATH", "REGEX", None, "^/(api|v2)/[a-z]+$"), (None, "^/(api|v2)/[a-z]+$")),
])
def test_l7_rules_accepted(rule: tuple, expected: tuple) -> None:
    assert validate.l7_rule(*rule) == expected


@pytest.mark.parametrize("rule, words", [
    (("HEADER", "EQUAL_TO", None, "x"), "needs a key"),
    (("PATH", "EQUAL_TO", "k", "/x"), "takes no key"),
    (("FILE_TYPE", "CONTAINS", None, "jpg"), "EQUAL_TO or REGEX"),
    (("PATH", "REGEX", None, "(unclosed"), "does not compile"),
    (("PATH", "REGEX", None, "a\\.b"), "backslash"),
    (("PATH", "REGEX", None, "/${HOME}"), "may not hold"),
    (("PATH", "EQUAL_TO", None, "/a b"), "may not hold"),
    (("PATH", "EQUAL_TO", None, "/x\n    bind :22"), "may not hold"),
    (("HOST_NAME", "EQUAL_TO", None, "a#b"), "may not hold"),
    (("HEADER", "EQUAL_TO", "X Y", "v"), "header name"),
    (("COOKIE", "EQUAL_TO", "c", "a\"b"), "may not hold"),
    (("PATH", "EQUAL_TO", None, "/\u0661"), "may not hold"),
])
def test_l7_rules_refused(rule: tuple, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        validate.l7_rule(*rule)


@pytest.mark.parametrize("value", [
    "javascript:alert(1)", "https://x.com/a b", "https://x.com/%0d%0a", "http://x.com\n",
    "//x.com", "https://x.com/\"", "ftp://x.com", "https://x.com/${HOME}"])
def test_redirects_refused(value: str) -> None:
    with pytest.raises(ValueError):
        validate.redirect_url(value)


def test_redirects_accepted() -> None:
    for url in ("https://www.example.com", "http://[fd00::1]:8080/moved?x=1", "http://10.0.0.1/a"):
        assert validate.redirect_url(url) == url
