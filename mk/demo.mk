# The demo pages' browser dependencies (Uppy), from npm into client-demo/node_modules, which the
# local gateway serves as static files: no bundler, no CDN. `npm ci` runs only when the lockfile
# changed since the last install (the stamp lives inside node_modules, so `npm ci` wiping it or
# `make clean` removing node_modules both bring the install back).
DEMO_DIR := client-demo
DEMO_STAMP := $(DEMO_DIR)/node_modules/.demo-deps-stamp

.PHONY: demo-deps

demo-deps: $(DEMO_STAMP) ## install the demo pages' npm packages (Uppy) from the lockfile
	@:

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
