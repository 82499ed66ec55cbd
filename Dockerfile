# lbaas in one container: the two commands a newcomer needs work inside it.
#
#   docker build -t lbaas .
#   docker run --rm -it --network host lbaas              # make run: the all-in-one on 127.0.0.1:9876
#   docker run --rm -it lbaas make test                   # make test: installs and starts PostgreSQL,
#                                                         # MariaDB, RabbitMQ, Chromium, Keystone and
#                                                         # Barbican itself (several minutes the first time)
#
# `make run` serves on loopback: --network host reaches it from the host, or pass a
# configuration with [api] bind_host = 0.0.0.0 (make run ARGS="--config-file ...") and publish 9876.
FROM python:3.11-slim

# make drives everything; haproxy is the appliance's data plane (Debian's, 2.6).
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make haproxy \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/lbaas
# Dependencies first, so that editing the code does not reinstall them.
COPY pyproject.toml ./
COPY lbaas/__init__.py lbaas/__init__.py
RUN python3 -m venv .venv && .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e '.[test]'
COPY . .
# The code is in place now: install it again (quick, dependencies are there) and mark the venv ready for make.
RUN .venv/bin/pip install -q --no-deps -e '.[test]' && touch .venv/.installed

EXPOSE 9876
CMD ["make", "run"]
