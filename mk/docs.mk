# The docs site (mkdocs-material): `make docs` regenerates the tables that restate template.yaml,
# the built-in profiles and bench/results.json, then builds the site into site/ (gitignored).
# Included by the root Makefile (`-include mk/*.mk`).

.PHONY: docs docs-tables docs-serve

docs-tables: setup ## regenerate docs/generated/*.md from template.yaml, the profiles and bench/results.json
	@$(BIN)/python scripts/docs_tables.py

docs: docs-tables ## build the docs site into site/ (mkdocs build --strict: broken links fail)
	@$(BIN)/mkdocs build --strict --quiet --site-dir site && echo "==> site/index.html"

docs-serve: docs-tables ## serve the docs site on http://127.0.0.1:8000 with live reload
	@$(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:8000
