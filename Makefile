# Set-up and entry points. `make serve` runs the product, `make test` runs every test.
# Both create the virtual environment, install the Python and npm dependencies, install
# ffmpeg (and Chromium for tests) from Debian's packages when running as root, and build the SPA.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WEB_STAMP := server/viralsplit/static/index.html
WEB_SOURCES := $(shell find web -path web/node_modules -prune -o -type f -print 2>/dev/null)
PYTEST_ARGS ?=

.PHONY: serve test deps tools browser web bench clean

serve: deps tools web
	$(BIN)/viralsplit serve

test: deps tools browser web
	$(BIN)/python -m pytest $(PYTEST_ARGS)

deps: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# ffmpeg and ffprobe with libx264 and aac: Debian's ffmpeg package has both.
tools:
	@if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
	  else \
	    echo "ffmpeg and ffprobe are missing: install them (Debian/Ubuntu: sudo apt-get install ffmpeg; macOS: brew install ffmpeg) and run make again" >&2; \
	    exit 1; \
	  fi; \
	fi

# Debian's Chromium for the browser tests; Playwright drives it, it never downloads its own.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; \
	  else \
	    echo "Chromium is missing for the browser tests: sudo apt-get install chromium, or run with PYTEST_ARGS='-m \"not e2e\"'" >&2; \
	    exit 1; \
	  fi; \
	fi

web: $(WEB_STAMP)

$(WEB_STAMP): $(WEB_SOURCES)
	@if [ ! -f web/package.json ]; then echo "web/package.json not found: skipping the web build"; exit 0; fi; \
	if ! command -v npm >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	  else \
	    echo "npm is missing to build the web page: install Node.js 20 or newer and run make again" >&2; \
	    exit 1; \
	  fi; \
	fi; \
	cd web && npm ci --no-audit --no-fund && npm run build

bench: deps tools
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) web/node_modules server/viralsplit/static
