"""The HAProxy data plane ("device"): a small management service that runs one HAProxy per
load balancer and answers the agent-side driver in ``lbaas.agent.drivers.haproxy``.

Modules: ``schema`` checks the desired state, ``render`` turns it into haproxy.cfg,
``haproxy`` drives one HAProxy process, ``status`` reads its stats, ``manager`` keeps all
load balancers under the state directory, ``service`` is the HTTP API, ``errors`` maps
failures to HTTP answers.
"""
