# The two commands a newcomer needs: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test test-fast test-ha typecheck setup services haproxy chromium barbican keystone bench clean stop-haproxy

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

haproxy:
	@command -v haproxy >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy) \
	  || echo "HAProxy could not be installed: the all-in-one falls back to the noop driver"

services:
	bash scripts/ensure-services.sh

chromium:  # Debian's, for the dashboard test (Playwright drives it; no browser download)
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

barbican:  # a real Barbican for the key manager tests, in .venv-barbican (once; then instant)
	bash scripts/barbican-venv.sh

keystone:  # a real Keystone for the identity tests, in .venv-keystone (about 25 s once; then instant)
	bash scripts/keystone-venv.sh

run: setup haproxy
	$(VENV)/bin/lbaas all-in-one $(ARGS)

typecheck: setup  # configured in pyproject.toml [tool.mypy]
	$(VENV)/bin/mypy

# Self-contained and CPU-bound (client and server in one process): these run on two workers.
PARALLEL := tests/security tests/api/test_fuzz.py

test: setup services chromium barbican keystone typecheck
	$(PY) -m pytest -n 2 $(PARALLEL) $(PYTEST_ARGS)
	$(PY) -m pytest --durations=20 $(addprefix --ignore=,$(PARALLEL)) $(PYTEST_ARGS)

# Only the failures of a RabbitMQ node and of the PostgreSQL primary (private clusters; part of `make test`).
test-ha: setup services
	$(PY) -m pytest -m ha tests/ha $(PYTEST_ARGS)

# The quick loop: SQLite only, without the multi-process cluster and the security suite.
test-fast: setup services barbican keystone typecheck
	$(PY) -m pytest -k "sqlite or not (postgresql or mariadb)" \
	  --ignore=tests/test_cluster.py --ignore=tests/test_dashboard.py --ignore=tests/security --ignore=tests/ha $(PYTEST_ARGS)

bench: setup services keystone
	$(PY) bench/run.py
	$(PY) bench/bench_cost.py --quick --transport rabbit --check  # the per-change cost budget: fails loudly

stop-haproxy:  # the all-in-one's HAProxy processes outlive it by design (the data plane stays up)
	-@for pid in lbaas-data/device/*/haproxy.pid; do [ -f "$$pid" ] && kill $$(cat "$$pid") 2>/dev/null; done; true

clean: stop-haproxy
	rm -rf $(VENV) .venv-barbican lbaas-data .pytest_cache
