#!/usr/bin/env bash
# The clustered topology on one machine, for a person to try (issue 24): three RabbitMQ
# nodes with a broker-auth beside each, PostgreSQL with a synchronous standby and automatic
# failover (pg_auto_failover), two fleet-server replicas sharing the fleet, and some
# simulated cabinets spread over the nodes. Every process is the real one;
# kill any of them and watch the rest carry on (README: "A broker cluster that survives a
# node").
#
#   deploy/cluster/topology.sh up   DIR [CABINETS]   start everything under DIR (default 6 cabinets)
#   deploy/cluster/topology.sh down DIR              stop everything started under DIR
#
# Needs: `cargo build --release`, and from apt rabbitmq-server, postgresql-15-auto-failover
# and pg-auto-failover-cli. Ports used on 127.0.0.1: MQTT 8881-8883, AMQP 5671-5673, Erlang
# distribution 25671-25673, broker-auth 8781-8783, PostgreSQL monitor 55433 and nodes
# 55434-55435, HTTP API 8080 and 8081.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=${LF_BIN:-$here/../../target/release}
die() { echo "topology.sh: $*" >&2; exit 1; }
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: topology.sh up|down DIR [CABINETS]"


case $cmd in
up)
  cabinets=${3:-6}
  for b in fleet-server fleet-certs device-agent; do
    [ -x "$bin/$b" ] || die "$bin/$b missing: run cargo build --release first (or set LF_BIN)"
  done
  command -v pg_autoctl >/dev/null ||
    die "pg_auto_failover is not installed: apt-get install postgresql-15-auto-failover pg-auto-failover-cli"
  mkdir -p "$dir/logs" "$dir/pids"
  dir=$(cd "$dir" && pwd)
  certs=$dir/certs
  if [ ! -f "$certs/ca.crt" ]; then
    "$bin/fleet-certs" init --dir "$certs" >/dev/null
    "$bin/fleet-certs" issue --dir "$certs" --device fleet-server >/dev/null
    for i in $(seq 1 "$cabinets"); do
      "$bin/fleet-certs" issue --dir "$certs" --device "cab-$i" >/dev/null
    done
  fi
  echo "starting broker-auth beside each node"
  for n in 1 2 3; do
    setsid "$bin/fleet-server" broker-auth --listen "127.0.0.1:878$n" \
      >/dev/null 2>"$dir/logs/broker-auth-$n.log" &
    echo $! >"$dir/pids/broker-auth-$n"
  done
  echo "starting the RabbitMQ cluster (about 20 s)"
  LF_CERTS=$certs LF_MQTT_PORTS="8881 8882 8883" LF_AMQPS_PORTS="5671 5672 5673" \
    LF_DIST_PORTS="25671 25672 25673" LF_CLUSTER=topology \
    LF_AUTH_URLS="http://127.0.0.1:8781 http://127.0.0.1:8782 http://127.0.0.1:8783" \
    "$here/rabbitmq.sh" start "$dir/rabbitmq"
  echo "starting PostgreSQL with a synchronous standby (pg_auto_failover; about 10 s)"
  LF_PG_PORTS="55433 55434 55435" "$here/pg-auto-failover.sh" start "$dir/db"
  db="postgres://postgres@127.0.0.1:55434,127.0.0.1:55435/lockerfleet?target_session_attrs=read-write&sslmode=disable"
  token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  echo "master_secret_file = \"$dir/secrets/master.key\"" >"$dir/replica.toml"
  for r in a b; do
    port=8080; [ $r = b ] && port=8081
    setsid "$bin/fleet-server" --data-dir "$dir/replica-$r" --certs "$certs" \
      --config "$dir/replica.toml" --database-url "$db" --admin-token "$token" \
      --external-broker amqps://localhost:5671,localhost:5672,localhost:5673 \
      --http-listen "127.0.0.1:$port" >"$dir/logs/replica-$r.out" 2>"$dir/logs/replica-$r.log" &
    echo $! >"$dir/pids/replica-$r"
    # One after the other: the first creates the schema and the master secret.
    for _ in $(seq 1 100); do grep -q LOCKERFLEET_READY "$dir/logs/replica-$r.out" && break; sleep 0.2; done
    grep -q LOCKERFLEET_READY "$dir/logs/replica-$r.out" ||
      die "replica $r did not start; see $dir/logs/replica-$r.log"
  done
  for i in $(seq 1 "$cabinets"); do
    setsid "$bin/device-agent" --id "cab-$i" --certs "$certs" --data-dir "$dir/agent-$i" \
      --server localhost:8881,localhost:8882,localhost:8883 --hardware fake --boxes 12 \
      --fake-activity-per-sec 2 >/dev/null 2>"$dir/logs/cab-$i.log" &
    echo $! >"$dir/pids/cab-$i"
  done
  cat >"$dir/env" <<EOF
# source this file: the topology's API and how to reach it
export LOCKERFLEET_SERVER_URL=http://127.0.0.1:8080
export LOCKERFLEET_TOKEN=$token
export LOCKERFLEET_DATABASE_URL=$db
EOF
  cat <<EOF
up: replicas on http://127.0.0.1:8080 and :8081 (admin token in $dir/env), $cabinets cabinets.
  console:       $bin/fleet-console --server http://127.0.0.1:8081 --token $token
  kill a node:   $here/rabbitmq.sh kill $dir/rabbitmq 1     (restart: ... restart $dir/rabbitmq 1)
  kill replica:  kill -9 \$(cat $dir/pids/replica-a)
  kill database: $here/pg-auto-failover.sh kill $dir/db \$($here/pg-auto-failover.sh primary $dir/db | tr -dc 0-9)
  revoke a cabinet: $bin/fleet-certs revoke --dir $dir/certs --device ID && $here/rabbitmq.sh crl $dir/rabbitmq
  stop all:      $0 down $dir
EOF
  ;;
down)
  dir=$(cd "$dir" && pwd)
  for p in "$dir"/pids/*; do
    [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
  done
  [ -d "$dir/rabbitmq" ] && "$here/rabbitmq.sh" stop "$dir/rabbitmq" || true
  [ -d "$dir/db" ] && "$here/pg-auto-failover.sh" stop "$dir/db" || true
  echo "stopped; $dir keeps the data (remove it to start afresh)"
  ;;
*) die "unknown command $cmd: up|down" ;;
esac
