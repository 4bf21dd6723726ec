.PHONY: test build quickstart

# The test command: starts/configures PostgreSQL and MariaDB, then vet and race tests.
test:
	bash scripts/test.sh

build:
	go build -o bin/capisync ./cmd/capisync
