"""A write that loses a deadlock is run again; the client sees one answer."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from lbaas.db import lifecycle
from tests.conftest import start_api


class Deadlock(Exception):
    """What pymysql raises for MariaDB error 1213."""

    def __init__(self) -> None:
        super().__init__(1213, "Deadlock found when trying to get lock; try restarting transaction")


@pytest.fixture
def api(temp_database: Any, tmp_path: Any):  # type: ignore[no-untyped-def]
    server, stop = start_api(temp_database("sqlite").url, str(tmp_path), "sqlite")
    yield server
    stop()


def _deadlocking(monkeypatch: pytest.MonkeyPatch, times: int) -> list[int]:
    real = lifecycle.begin_change
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) <= times:
            raise OperationalError("UPDATE load_balancer ...", {}, Deadlock())
        return real(*args, **kwargs)

    monkeypatch.setattr(lifecycle, "begin_change", flaky)
    return calls


def test_a_deadlocked_write_is_run_again(api, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    lb = api.create_lb(name="before")
    calls = _deadlocking(monkeypatch, times=2)
    response = api.put(f"/lbaas/loadbalancers/{lb['id']}", {"loadbalancer": {"name": "after"}})
    assert response.status_code == 200, response.text
    assert len(calls) == 3
    assert api.wait_lb(lb["id"])["name"] == "after"


def test_a_write_that_keeps_deadlocking_answers_503_and_writes_nothing(api, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    lb = api.create_lb(name="before")
    calls = _deadlocking(monkeypatch, times=99)
    response = api.put(f"/lbaas/loadbalancers/{lb['id']}", {"loadbalancer": {"name": "after"}})
    assert response.status_code == 503 and "deadlock" in response.json()["faultstring"]
    assert "x-lbaas-retryable" not in response.headers
    assert len(calls) == 3
    monkeypatch.undo()
    assert api.get(f"/lbaas/loadbalancers/{lb['id']}").json()["loadbalancer"]["name"] == "before"
