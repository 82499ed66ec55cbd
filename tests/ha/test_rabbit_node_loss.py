"""Two servers and three agents on a private 3-node RabbitMQ cluster with
quorum queues (``[messaging] quorum_queues``), PostgreSQL as the database:
the queues are replicated; one node stopped mid-load, or the whole broker
restarted mid-load, loses no accepted change and applies none twice; a
message delivered too often is dead-lettered, then logged and counted by a
server."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection, Queue
from kombu.message import Message

from lbaas import wire
from lbaas.constants import DEAD_LETTER_QUEUE, EXCHANGE, agent_queue, controller_queue
from lbaas.testing.cluster import Cluster
from lbaas.testing.ha import DEFAULT_VHOST, RabbitCluster, parallel
from lbaas.testing.polling import wait_for
from tests.ha.conftest import HOSTS, SERVERS, SteadyLoad, settle_bound
from tests.test_metrics import scrape, value

pytestmark = pytest.mark.ha

DELIVERY_LIMIT = 10


@pytest.fixture(scope="module")
def cluster(rabbit: RabbitCluster, temp_database: Any,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    db = temp_database("postgresql", migrate=False)
    cluster = Cluster(str(tmp_path_factory.mktemp("cluster")), db.url, transport_url=rabbit.url(),
                      messaging=f"[messaging]\nquorum_queues = true\ndelivery_limit = {DELIVERY_LIMIT}\n")
    try:
        yield cluster.start_all(SERVERS, HOSTS)
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def all_running(rabbit: RabbitCluster, cluster: Cluster) -> None:
    """Each test starts with every node, both servers and all agents up."""
    for i, node in enumerate(rabbit.nodes):
        if not node.running():
            rabbit.start_node(i)
            rabbit.await_node(i)
    for host in HOSTS:
        if host not in cluster.agents:
            cluster.start_agent(host)
    cluster.wait_agents(HOSTS)


def test_controller_agent_and_dead_letter_queues_are_quorum_queues(rabbit: RabbitCluster,
                                                                    cluster: Cluster) -> None:
    names = [controller_queue(cluster.environment), DEAD_LETTER_QUEUE,
             *(agent_queue(cluster.environment, host) for host in HOSTS)]
    types = rabbit.queues(DEFAULT_VHOST, "type")   # one rabbitmqctl: each boots an Erlang VM
    assert {name: types[name][0] for name in names} == dict.fromkeys(names, "quorum")


def test_node_stopped_mid_load_every_accepted_change_completes_once(rabbit: RabbitCluster,
                                                                     cluster: Cluster) -> None:
    # The node leading the controller queue is the one whose loss moves the most:
    # a new leader is elected and its consumers reconnect elsewhere.
    victim = rabbit.leader(DEFAULT_VHOST, controller_queue(cluster.environment)) or 0
    load = SteadyLoad(cluster, f"node-{uuid.uuid4().hex[:4]}").start()
    try:
        time.sleep(2)
        rabbit.stop_node(victim)
        stopped = time.monotonic()
        time.sleep(5)
        rabbit.start_node(victim)
        rabbit.await_node(victim)
        back = time.monotonic()
        wait_for(lambda: load.accepted_after(back), settle_bound(cluster), 0.2, "a write accepted once it is back")
    finally:
        load.stop()
    assert load.accepted_after(stopped) > 0, load.answers
    print(load.summary())
    load.check(settle_bound(cluster))


def test_whole_broker_restarted_mid_load_every_accepted_change_completes_once(rabbit: RabbitCluster,
                                                                               cluster: Cluster) -> None:
    load = SteadyLoad(cluster, f"restart-{uuid.uuid4().hex[:4]}").start()
    try:
        time.sleep(1)
        parallel(*(lambda i=i: rabbit.stop_node(i) for i in range(len(rabbit.nodes))))
        time.sleep(2)
        for i in range(len(rabbit.nodes)):
            rabbit.start_node(i)
        for i in range(len(rabbit.nodes)):
            rabbit.await_node(i)
        back = time.monotonic()
        # Changes pending since the outage finish first (the load balancers are busy till then).
        wait_for(lambda: load.accepted_after(back), settle_bound(cluster), 0.2, "a write accepted once it is back")
    finally:
        load.stop()
    print(load.summary())
    load.check(settle_bound(cluster))


def test_poison_message_is_dead_lettered_then_logged_and_counted(rabbit: RabbitCluster,
                                                                 cluster: Cluster) -> None:
    host = HOSTS[-1]
    queue = agent_queue(cluster.environment, host)
    before = sum(_dead_letters(cluster, server) for server in SERVERS)
    cluster.stop_agent(host)   # its queue stays, and only this test consumes it meanwhile
    poison = wire.Converge(loadbalancer_id=f"poison-{uuid.uuid4()}", revision=1)
    with Connection(rabbit.node_url(0)) as conn:
        conn.Producer().publish(json.dumps({"method": poison.method, "args": poison.args()}),
                                exchange=EXCHANGE, routing_key=queue, content_type="application/json",
                                content_encoding="utf-8", delivery_mode=2)
        channel = conn.channel()
        inbox = Queue(queue, no_declare=True)(channel)
        # A consumer that fails on it every time: each reject puts it back, one delivery more.
        # Casts for other load balancers still bound to the stopped agent may share the queue:
        # they are taken off (the agent resyncs when it is back) and not counted.
        for delivery in range(DELIVERY_LIMIT + 1):
            message = wait_for(lambda: _next_poison(inbox, poison.loadbalancer_id), 10, 0.05,
                               f"delivery {delivery + 1}")
            message.requeue()
        time.sleep(1)
        assert _next_poison(inbox, poison.loadbalancer_id) is None   # past the limit: gone...
    # ... to lbaas.dead-letter, where a server consumes, logs and counts it.
    wait_for(lambda: sum(_dead_letters(cluster, server) for server in SERVERS) == before + 1, 15, 0.2,
             "a server to count the dead letter")
    logs = "".join(open(f"{cluster.workdir}/{server}.log", encoding="utf-8", errors="replace").read()
                   for server in SERVERS)
    assert f"from queue {queue}" in logs and poison.loadbalancer_id in logs


def _next_poison(inbox: Queue, loadbalancer_id: str) -> Message | None:
    """The next delivery of the poison message; anything else in the queue is acknowledged."""
    while (message := inbox.get(no_ack=False)) is not None:
        if json.loads(message.body)["args"].get("loadbalancer_id") == loadbalancer_id:
            return message
        message.ack()
    return None


def _dead_letters(cluster: Cluster, server: str) -> float:
    with cluster.client(server) as client:
        return value(scrape(client), "lbaas_dead_letters_total", method=wire.Converge.method)
