# The two set-up commands of the README: `make serve` and `make test`. Each installs what it needs.
VENV   := .venv
PY     := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: serve test bench install

serve: $(VENV)/.installed node_modules/.installed
	$(VENV)/bin/gunrelay serve

# The whole suite, then the real-GunJS interop suites (Node and Chromium clients, resets and the
# client plugin) once more with every relay they start on PostgreSQL (tests/postgres_everywhere.py)
PG_AGAIN := tests/interop/test_gunjs_clients.py tests/interop/test_reset.py tests/interop/test_plugin_node.py tests/interop/test_browser.py

test: $(VENV)/.installed node_modules/.installed $(VENV)/.debian
	$(PY) -m pytest
	PYTHONPATH=tests $(PY) -m pytest -p postgres_everywhere $(PG_AGAIN)

bench: $(VENV)/.installed node_modules/.installed
	$(PY) bench/run.py

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's chromium for the browser tests (Playwright drives /usr/bin/chromium; it downloads no browser)
# fuse3 for the fault tests' file system, nginx for the reverse-proxy test, and postgresql for the
# PostgreSQL store's throwaway servers.
$(VENV)/.debian:
	(command -v chromium && command -v fusermount3 && (command -v nginx || test -x /usr/sbin/nginx) && ls /usr/lib/postgresql/*/bin/initdb) >/dev/null 2>&1 || tools/install-debian-packages
	touch $@
