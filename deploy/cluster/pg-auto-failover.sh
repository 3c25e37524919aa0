#!/usr/bin/env bash
# The database tier on one machine: PostgreSQL with a synchronous standby and automatic
# failover by Debian's pg_auto_failover (a monitor and two data nodes on loopback; issue 24,
# docs/research/database-tier.md). Used by the end-to-end tests and deploy/cluster/topology.sh.
#
#   pg-auto-failover.sh start   DIR     monitor + node1 (primary) + node2 (synchronous standby)
#   pg-auto-failover.sh uri     DIR     the servers' database URL (every node; the server
#                                       writes to whichever is primary)
#   pg-auto-failover.sh primary DIR     the name of the node that is primary now
#   pg-auto-failover.sh state   DIR     the monitor's view of every node
#   pg-auto-failover.sh kill    DIR N   kill -9 node N's keeper and PostgreSQL (a dying machine)
#   pg-auto-failover.sh restart DIR N   start node N again: it rejoins as standby by itself
#   pg-auto-failover.sh stop    DIR     stop everything
#
# `start` reads LF_PG_PORTS: three free ports, "MONITOR NODE1 NODE2". Lab settings: trust
# authentication on loopback, no TLS, failover after about 20 s (the defaults take about 50 s).
set -euo pipefail

die() { echo "pg-auto-failover.sh: $*" >&2; exit 1; }
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: pg-auto-failover.sh start|uri|primary|kill|restart|stop DIR [N]"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] && command -v pg_autoctl >/dev/null ||
  die "pg_auto_failover is not installed: apt-get install postgresql-15-auto-failover pg-auto-failover-cli"

# pg_autoctl keeps its state under XDG directories: keep them inside DIR.
as_pg() {
  # PGHOST: the nodes' sockets are in DIR/sock (below), so the keepers look there.
  local run=(env PATH="$bin:$PATH" PGHOST="$dir/sock" XDG_CONFIG_HOME="$dir/xdg/config"
    XDG_DATA_HOME="$dir/xdg/data" XDG_RUNTIME_DIR="$dir/xdg/run" PG_CONFIG="$bin/pg_config")
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "${run[@]}" "$@"); else "${run[@]}" "$@"; fi
}

# A PostgreSQL of the lab whose socket lives in DIR/sock, not in the machine's shared
# /var/run/postgresql, where a killed run's socket locks outlive it and can refuse a later
# run's node. pg_autoctl takes such an instance over; a standby copies its settings.
init_pgdata() { # NAME
  as_pg initdb -D "$dir/$1" -A trust -U postgres >>"$dir/$1.log" 2>&1
  echo "unix_socket_directories = '$dir/sock'" >>"$dir/$1/postgresql.conf"
}

run_node() { # NAME: its keeper (which starts and watches its PostgreSQL), in a session of its own
  as_pg setsid pg_autoctl run --pgdata "$dir/$1" >>"$dir/$1.log" 2>&1 </dev/null &
}

monitor_uri() { echo "postgres://autoctl_node@127.0.0.1:$(cat "$dir/monitor.port")/pg_auto_failover?sslmode=disable"; }

state() { as_pg pg_autoctl show state --pgdata "$dir/monitor" 2>/dev/null; }

wait_for() { # WHAT SECONDS: until `show state` mentions WHAT
  for _ in $(seq 1 "$2"); do state | grep -q "$1" && return 0; sleep 1; done
  state >&2 || true
  die "no node reached '$1' within $2 s; logs in $dir/*.log"
}

case $cmd in
start)
  read -r -a ports <<<"${LF_PG_PORTS:?LF_PG_PORTS: three free ports, MONITOR NODE1 NODE2}"
  [ "${#ports[@]}" = 3 ] || die "LF_PG_PORTS must name three ports"
  mkdir -p "$dir/xdg/config" "$dir/xdg/data" "$dir/xdg/run" "$dir/sock"
  chmod 700 "$dir/xdg/run"
  echo "${ports[0]}" >"$dir/monitor.port"
  if [ "$(id -u)" = 0 ]; then chown -R postgres "$dir"; fi
  init_pgdata monitor
  as_pg pg_autoctl create monitor --pgdata "$dir/monitor" --pgport "${ports[0]}" \
    --hostname 127.0.0.1 --auth trust --no-ssl >>"$dir/monitor.log" 2>&1
  run_node monitor
  for _ in $(seq 1 30); do state >/dev/null && break; sleep 1; done
  # Failover in about 20 s: the monitor calls a node unhealthy after 8 s without an answer
  # and a primary cut off from everyone demotes itself after 12 s.
  as_pg psql -q -h 127.0.0.1 -p "${ports[0]}" -U autoctl_node -d pg_auto_failover \
    -c "ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = '8s'" \
    -c "ALTER SYSTEM SET pgautofailover.primary_demote_timeout = '12s'" \
    -c "ALTER SYSTEM SET pgautofailover.health_check_period = '2s'" \
    -c "SELECT pg_reload_conf()" >/dev/null 2>&1 ||
    as_pg psql -q -h 127.0.0.1 -p "${ports[0]}" -U postgres -d pg_auto_failover \
      -c "ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = '8s'" \
      -c "ALTER SYSTEM SET pgautofailover.primary_demote_timeout = '12s'" \
      -c "ALTER SYSTEM SET pgautofailover.health_check_period = '2s'" \
      -c "SELECT pg_reload_conf()" >/dev/null
  init_pgdata node1
  for n in 1 2; do
    as_pg pg_autoctl create postgres --pgdata "$dir/node$n" --pgport "${ports[$n]}" \
      --hostname 127.0.0.1 --name "node$n" --auth trust --no-ssl --dbname lockerfleet \
      --monitor "$(monitor_uri)" >>"$dir/node$n.log" 2>&1
    as_pg pg_autoctl config set --pgdata "$dir/node$n" timeout.network_partition_timeout 8 >/dev/null
    run_node "node$n"
    if [ "$n" = 1 ]; then wait_for single 60; else wait_for secondary 120; fi
  done
  echo "PostgreSQL node1 (primary) on ${ports[1]}, node2 (synchronous standby) on ${ports[2]}, monitor on ${ports[0]}"
  ;;
uri)
  # `pg_autoctl show uri` gives libpq's multi-host form; the server accepts the same.
  as_pg pg_autoctl show uri --pgdata "$dir/monitor" --formation default
  ;;
state)
  state
  ;;
primary)
  # The node the monitor assigns a writing state (primary, or wait_primary while alone);
  # asked again for a while when the monitor does not answer or names none.
  for _ in $(seq 1 20); do
    name=$(state | awk -F'|' '{gsub(/ /, "", $1); gsub(/ /, "", $7)} $7 ~ /^(primary|wait_primary|single)$/ {print $1; exit}')
    [ -n "$name" ] && { echo "$name"; exit 0; }
    sleep 0.5
  done
  die "the monitor names no primary: $(state 2>&1 || true)"
  ;;
kill)
  n=${3:?node number}
  # The keeper runs in a session of its own (setsid) with its PostgreSQL in its process
  # group: kill the whole group, and the postmaster by its pid file besides.
  keeper=$(pgrep -f "^pg_autoctl run --pgdata $dir/node$n\$" | head -n 1 || true)
  pm=$(head -1 "$dir/node$n/postmaster.pid" 2>/dev/null || true)
  [ -n "$keeper$pm" ] || die "node $n is not running"
  [ -n "$keeper" ] && kill -9 -- "-$keeper" 2>/dev/null || true
  [ -n "$pm" ] && kill -9 "$pm" 2>/dev/null || true
  ;;
restart)
  n=${3:?node number}
  # A machine that comes back runs none of its old processes, so the lock files its
  # PostgreSQL left (postmaster.pid, and the socket's lock in DIR/sock) are stale.
  # Where nothing reaps orphans (a container's or a pid namespace's first process), the killed
  # postmaster lingers as a zombie under its old pid, and PostgreSQL would take it for a
  # running postmaster and never start: remove such files.
  pidfile="$dir/node$n/postmaster.pid"
  pm=$(sed -n 1p "$pidfile" 2>/dev/null || true)
  if [ -n "$pm" ]; then
    st=$(sed 's/.*) //' "/proc/$pm/stat" 2>/dev/null | cut -d' ' -f1 || true)
    case $st in
    "" | Z)
      # Lines 4 and 5 of postmaster.pid: the port and the socket directory.
      sock="$(sed -n 5p "$pidfile")/.s.PGSQL.$(sed -n 4p "$pidfile")"
      rm -f "$pidfile" "$sock" "$sock.lock"
      ;;
    *) die "node $n is still running (postmaster pid $pm)" ;;
    esac
  fi
  run_node "node$n"
  ;;
stop)
  for n in node1 node2 monitor; do
    [ -d "$dir/$n" ] && as_pg pg_autoctl stop --pgdata "$dir/$n" >/dev/null 2>&1 || true
  done
  for n in node1 node2 monitor; do
    keeper=$(pgrep -f "^pg_autoctl run --pgdata $dir/$n\$" | head -n 1 || true)
    [ -n "$keeper" ] && kill -9 -- "-$keeper" 2>/dev/null || true
  done
  ;;
*) die "unknown command $cmd" ;;
esac
