# The two commands the README gives a newcomer.
#   make demo   shows ecp working, step by step, without touching the machine
#   make test   runs every check CI runs: formatting, lints, unit, interop
#               and end-to-end tests

CARGO ?= cargo

.PHONY: demo test lint build

demo:
	./scripts/demo.sh

build:
	$(CARGO) build --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test:
	./scripts/test.sh
