.PHONY: test build quickstart

# The test command: starts/configures PostgreSQL and MariaDB, then vet and race tests.
test:
	bash scripts/test.sh

build:
	go build -ldflags "-X main.version=$$(git describe --tags --always --dirty 2>/dev/null || echo dev) -X main.commit=$$(git rev-parse HEAD 2>/dev/null) -X main.buildDate=$$(date -u +%Y-%m-%dT%H:%M:%SZ)" -o bin/capisync ./cmd/capisync

# The quickstart: a SQLite CRM polled every 5 s, events printed (dry run).
quickstart:
	go run ./examples/quickstart
	go run ./cmd/capisync run --config examples/quickstart/config.yaml
