# imgate: the two commands are `make run` and `make test` (see README.md).
VENV   ?= .venv
PYTHON ?= python3
PORT   ?= 1883
STAMP  := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint test-sqlite test-postgres deps-system bench clean rabbitmq

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "imgate needs Python 3.11+"'
	[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

## run: install (first time) and run broker + bridge + services on SQLite in ./data
run: $(STAMP)
	$(VENV)/bin/imgate run --port $(PORT) $(ARGS)

## test: install (first time), lint (ruff, mypy), then the whole suite on SQLite, then on PostgreSQL
test: $(STAMP) deps-system lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)
	IMGATE_TEST_DB=postgres $(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --strict broker bridge services config imgate

test-sqlite: $(STAMP) deps-system
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-postgres: $(STAMP) deps-system
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

## rabbitmq: a private RabbitMQ node for cluster mode on this machine (README, "Scale out")
rabbitmq: deps-system
	scripts/rabbitmq-local

bench: $(STAMP)
	$(VENV)/bin/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
