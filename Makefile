# imgate: the two commands are `make run` and `make test` (see README.md).
VENV   ?= .venv
PYTHON ?= python3
SUM    := $(shell cksum < pyproject.toml | cut -d' ' -f1)
# `make run` installs what imgate needs to run; `make test` adds the test extras (pytest, ruff,
# mypy, playwright, moto, …). Each stamp names pyproject.toml's checksum: edit it, and the next
# make installs again.
RUN_STAMP  := $(VENV)/.installed-run-$(SUM)
TEST_STAMP := $(VENV)/.installed-test-$(SUM)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint test-sqlite test-postgres deps-system bench clean rabbitmq

define install
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "imgate needs Python 3.11+ (set PYTHON=python3.11 or newer)")'
	[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '$(1)'
endef

$(RUN_STAMP): pyproject.toml
	$(call install,.)
	rm -f $(VENV)/.installed-run-* && touch $@

$(TEST_STAMP): pyproject.toml
	$(call install,.[test])
	rm -f $(VENV)/.installed-* && touch $@ $(RUN_STAMP)

## run: install (first time) and run broker + bridge + services on SQLite in ./data.
## PORT=N: MQTT on N, and the WebSocket, web page and admin listeners move by as much (N-1883).
run: $(RUN_STAMP)
	$(VENV)/bin/imgate run $(if $(PORT),--port $(PORT)) $(ARGS)

## test: install (first time), lint (ruff, mypy), then the whole suite on SQLite, then on PostgreSQL
test: $(TEST_STAMP) deps-system lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)
	IMGATE_TEST_DB=postgres $(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --strict broker bridge services config imgate

test-sqlite: $(TEST_STAMP) deps-system
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-postgres: $(TEST_STAMP) deps-system
	IMGATE_TEST_DB=postgres $(VENV)/bin/pytest $(PYTEST_ARGS)

# The README walkthrough test runs Debian's mosquitto_pub / mosquitto_sub; the RabbitMQ tests start
# a private node of Debian's rabbitmq-server (tests/rabbitmq.py; the package's own node is left alone);
# the web chat test drives Debian's chromium (tests/test_webchat.py); tests/test_c_device.py builds
# examples/c-device with gcc, make, pkg-config and Debian's libmosquitto-dev and libcbor-dev.
deps-system:
	@command -v mosquitto_pub >/dev/null && command -v mosquitto_sub >/dev/null || \
	  ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q mosquitto-clients)
	@[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || \
	  ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q rabbitmq-server)
	@command -v chromium >/dev/null || \
	  ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)
	@dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 || \
	  ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q fonts-noto-color-emoji)  # the page's emoji in screenshots
	@command -v gcc >/dev/null && command -v make >/dev/null && command -v pkg-config >/dev/null && \
	  pkg-config --exists libmosquitto libcbor || \
	  ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q gcc make pkg-config libmosquitto-dev libcbor-dev)

## rabbitmq: a private RabbitMQ node for cluster mode on this machine (docs/scale-out.md)
rabbitmq: deps-system
	scripts/rabbitmq-local

bench: $(TEST_STAMP)
	$(VENV)/bin/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
