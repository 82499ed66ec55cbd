"""Two servers and three agents whose database is a private PostgreSQL primary
with a synchronous standby, reached by one multi-host URL: the primary dies
mid-load, the standby is promoted a moment later. Writes are refused with 503
(never a 500) while no primary exists, the servers follow the promoted one, and
no accepted change is lost, applied twice or left pending."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from lbaas.testing.cluster import Cluster
from lbaas.testing.ha import PostgresPair
from tests.ha.conftest import HOSTS, REFUSED, SERVERS, SteadyLoad, settle_bound

pytestmark = pytest.mark.ha


@pytest.fixture(scope="module")
def cluster(postgres: PostgresPair, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    db_url = postgres.create_database(f"lbaas_ha_{uuid.uuid4().hex[:8]}")
    cluster = Cluster(str(tmp_path_factory.mktemp("cluster")), db_url)
    try:
        yield cluster.start_all(SERVERS, HOSTS)
    finally:
        cluster.stop()


def test_primary_lost_mid_load_standby_promoted_nothing_lost_or_doubled(postgres: PostgresPair,
                                                                        cluster: Cluster) -> None:
    load = SteadyLoad(cluster, f"pg-{uuid.uuid4().hex[:4]}").start()
    try:
        time.sleep(2)
        postgres.stop_primary("immediate")
        time.sleep(1.5)   # long enough for every server to see it has no primary
        postgres.promote_standby()
        promoted = time.monotonic()
        time.sleep(5)
    finally:
        load.stop()
    assert load.answers[REFUSED] > 0, load.answers        # the outage was seen...
    assert load.accepted_after(promoted + 1) > 0, load.answers   # ... and the servers followed the new primary
    print(load.summary())
    load.check(settle_bound(cluster))
