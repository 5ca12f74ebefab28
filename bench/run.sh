#!/usr/bin/env bash
# Runs the side-by-side benchmarks (bench/ and sessiond's in-process resolve
# handler) against one Redis and prints a Markdown table of medians.
#
#   bench/run.sh            # COUNT=5 runs of each, -cpu 1,2
#   COUNT=3 bench/run.sh    # quicker
#   REDIS_URL=redis://127.0.0.1:6379 bench/run.sh   # an existing Redis
#                           #   (the memory rows need nothing else writing to it)
#
# Raw output is kept in bench/out/ (git-ignored) for benchstat.
set -euo pipefail
cd "$(dirname "$0")"
COUNT=${COUNT:-5}
CPU=${CPU:-1,2}
out=out
mkdir -p "$out"

if [[ -z "${REDIS_URL:-}" ]]; then
	dir=$(mktemp -d)
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 6391)
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
		--maxmemory-policy noeviction --daemonize yes --pidfile "$dir/redis.pid" >/dev/null
	trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null; rm -rf "$dir"' EXIT
	for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
	export REDIS_URL="redis://127.0.0.1:$port"
fi
echo "Redis: $(redis-cli -u "$REDIS_URL" info server | grep -m1 redis_version | tr -d '\r'), go: $(go version | cut -d' ' -f3), $(nproc) CPUs" >&2

go test -run TestPayloadSizes -count 1 . >&2
go test -run '^$' -bench '^Benchmark(Floor|Ours|SCS|Gorilla)$' -benchmem -cpu "$CPU" -count "$COUNT" . | tee "$out/redis.txt" >&2
(cd .. && go test -run '^$' -bench '^BenchmarkResolveHandler$' -benchmem -cpu "$CPU" -count "$COUNT" ./cmd/sessiond) | tee "$out/sessiond.txt" >&2
(cd .. && go test -run '^$' -bench '^BenchmarkResolveHTTP$' -benchtime 3s -cpu 2 -count "$(( COUNT < 3 ? COUNT : 3 ))" ./cmd/sessiond) | tee "$out/sessiond-http.txt" >&2
go test -run '^$' -bench '^BenchmarkMemoryGetAtScale$' -benchmem -cpu "$CPU" -count "$COUNT" -timeout 30m . | tee "$out/memory-get.txt" >&2
go test -run '^$' -bench '^Benchmark(RedisMemory|MemoryHeapPerSession|MemoryJanitorStall)$' -benchtime 1x -count "$(( COUNT < 3 ? COUNT : 3 ))" -cpu 2 -timeout 30m . | tee "$out/sizes.txt" >&2

cat "$out"/redis.txt "$out"/sessiond.txt "$out"/sessiond-http.txt "$out"/memory-get.txt "$out"/sizes.txt | go run ./internal/benchtable
