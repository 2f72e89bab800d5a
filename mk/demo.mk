# The demo pages' browser dependencies (Uppy), from npm into client-demo/node_modules, which the
# local gateway serves as static files: no bundler, no CDN. `npm ci` runs only when the lockfile
# changed since the last install (the stamp lives inside node_modules, so `npm ci` wiping it or
# `make clean` removing node_modules both bring the install back).
DEMO_DIR := client-demo
DEMO_STAMP := $(DEMO_DIR)/node_modules/.demo-deps-stamp
# The JavaScript client (@directupload/client): plain ESM the pages import as is; its dev tools
# (openapi-typescript for the wire types, tsc for the type check) come from its own lockfile.
JS_DIR := $(DEMO_DIR)/js
JS_STAMP := $(JS_DIR)/node_modules/.js-deps-stamp

.PHONY: demo-deps js-wire client-statuses

demo-deps: $(DEMO_STAMP) $(JS_STAMP) ## install the demo pages' and the JS client's npm packages from their lockfiles
	@:

js-wire: setup $(JS_STAMP) ## regenerate client-demo/js/src/wire.d.ts from the API's OpenAPI document
	@set -o pipefail; $(BIN)/python scripts/openapi.py | (cd $(JS_DIR) && node_modules/.bin/openapi-typescript -o src/wire.d.ts)

$(JS_STAMP): $(JS_DIR)/package-lock.json $(JS_DIR)/package.json
	@log=$$(mktemp); \
	if ! (cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error) >"$$log" 2>&1; then \
		cat "$$log" >&2; rm -f "$$log"; echo "npm ci in $(JS_DIR)/ failed" >&2; exit 1; \
	fi; \
	rm -f "$$log"
	@touch $@

$(DEMO_STAMP): $(DEMO_DIR)/package-lock.json $(DEMO_DIR)/package.json
	@if ! command -v npm >/dev/null 2>&1; then \
		echo "==> Debian packages: nodejs npm (for the demo pages' Uppy)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm >/dev/null; \
	fi
	@log=$$(mktemp); \
	if ! (cd $(DEMO_DIR) && npm ci --no-audit --no-fund --loglevel=error) >"$$log" 2>&1; then \
		cat "$$log" >&2; rm -f "$$log"; echo "npm ci in $(DEMO_DIR)/ failed" >&2; exit 1; \
	fi; \
	rm -f "$$log"
	@test -f $(DEMO_DIR)/node_modules/uppy/dist/uppy.min.js || \
		{ echo "$(DEMO_DIR)/node_modules/uppy/dist/uppy.min.js is missing after npm ci" >&2; exit 1; }
	@touch $@

client-statuses: setup ## regenerate the CLI's and the JS client's status lists from the API's OpenAPI document
	@$(BIN)/python scripts/client_statuses.py
