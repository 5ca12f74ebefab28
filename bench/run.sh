#!/usr/bin/env bash
# Runs the side-by-side benchmarks (bench/ and sessiond's resolve handler)
# against one Redis and prints a Markdown table of medians.
#
#   bench/run.sh            # COUNT=5 rounds, -cpu 1,2
#   COUNT=3 bench/run.sh    # quicker
#   REDIS_URL=redis://127.0.0.1:6379 bench/run.sh   # an existing Redis
#                           #   (the Redis memory rows need nothing else writing to it)
#
# The rounds are interleaved (every contender once per round, COUNT
# rounds) rather than -count N of each in a row, so that a change in the
# machine's load while the script runs falls on every contender alike.
# Raw output is kept in bench/out/ (git-ignored), one file per group, in
# the format benchstat reads.
set -euo pipefail
cd "$(dirname "$0")"
COUNT=${COUNT:-5}
CPU=${CPU:-1,2}
out=$PWD/out
rm -rf "$out"
mkdir -p "$out/bin"

if [[ -z "${REDIS_URL:-}" ]]; then
	dir=$(mktemp -d)
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 6391)
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
		--maxmemory-policy noeviction --daemonize yes --pidfile "$dir/redis.pid" >/dev/null
	trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null; rm -rf "$dir"' EXIT
	for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
	export REDIS_URL="redis://127.0.0.1:$port"
fi
echo "Redis $(redis-cli -u "$REDIS_URL" info server | grep -m1 redis_version | cut -d: -f2 | tr -d '\r'), $(go version | cut -d' ' -f3), $(nproc) CPUs, COUNT=$COUNT" >&2

go test -c -o "$out/bin/bench.test" .
(cd .. && go test -c -o "$out/bin/sessiond.test" ./cmd/sessiond)
"$out/bin/bench.test" -test.run TestPayloadSizes >&2

bench=$out/bin/bench.test
sessiond=$out/bin/sessiond.test
run() { # file binary args...
	local f=$1
	shift
	"$@" -test.run '^$' -test.timeout 30m | tee -a "$out/$f.txt" >&2
}
for round in $(seq "$COUNT"); do
	echo "round $round of $COUNT" >&2
	run redis "$bench" -test.bench '^Benchmark(Floor|Ours|SCS|Gorilla)$' -test.benchmem -test.cpu "$CPU"
	(cd ../cmd/sessiond && run sessiond "$sessiond" -test.bench '^BenchmarkResolveHandler$' -test.benchmem -test.cpu "$CPU")
	(cd ../cmd/sessiond && run sessiond-http "$sessiond" -test.bench '^BenchmarkResolveHTTP$' -test.benchtime 3s -test.cpu 2)
	run memory-get "$bench" -test.bench '^BenchmarkMemoryGetAtScale$' -test.benchmem -test.cpu "$CPU"
	if ((round <= 3)); then
		run sizes "$bench" -test.bench '^Benchmark(RedisMemory|MemoryHeapPerSession|MemoryJanitorStall)$' -test.benchtime 1x -test.cpu 2
	fi
done

cat "$out"/redis.txt "$out"/sessiond.txt "$out"/sessiond-http.txt "$out"/memory-get.txt "$out"/sizes.txt | go run ./internal/benchtable
