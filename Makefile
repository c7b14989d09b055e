# The two commands a newcomer needs are `make run` (or `go run ./cmd/lupa`) and `make test`.

.PHONY: run test bench build

run:
	go run ./cmd/lupa

test:
	./.ci/test.sh

bench:
	./bench/run.sh

build:
	go build -o bin/lupa ./cmd/lupa
