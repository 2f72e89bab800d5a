# Performance: `make bench` (about 11 minutes), `make bench-quick` (a smoke run), `make cost`,
# `make request-counts` (the AWS requests per upload, which `make cost` reads).
# Included by the root Makefile (`-include mk/*.mk`). docs/performance.md explains the figures.

.PHONY: bench bench-quick cost request-counts

bench: setup ## run the performance suite: prints the table, writes bench/results.json
	@$(BIN)/python -m bench

bench-quick: setup ## a short run of the performance suite (fewer repeats, small objects)
	@$(BIN)/python -m bench --quick

cost: setup ## cost of a million uploads (template settings, us-east-1 prices) vs proxying the bytes
	@$(BIN)/python -m bench.cost_model

request-counts: setup ## count the AWS requests per upload on the local stack, into bench/request_counts.json
	@$(BIN)/python -m bench.request_counts --write >/dev/null
