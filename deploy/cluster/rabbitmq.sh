#!/usr/bin/env bash
# The broker tier on one machine: a RabbitMQ cluster of Debian's `rabbitmq-server` nodes on
# loopback, each with an MQTT listener for the cabinets and an AMQP listener for the server
# replicas, both mutual TLS with the fleet CA, and every authorisation decision asked of a
# `fleet-server broker-auth` service (ADR 0024). Used by the end-to-end tests and by
# deploy/cluster/topology.sh; for real machines see deploy/cluster/README.md.
#
#   rabbitmq.sh start   DIR   start every node and join them into one cluster
#   rabbitmq.sh stop    DIR   stop every node (kill -9 what does not stop)
#   rabbitmq.sh kill    DIR N kill -9 node N (its Erlang VM), as a dying machine would
#   rabbitmq.sh restart DIR N start node N again; it rejoins the cluster by itself
#   rabbitmq.sh etc     DIR   a real node's settings in DIR (/etc/rabbitmq; LF_CERTS, and
#                             LF_MQTT_LISTENER, LF_AMQPS_LISTENER, LF_AUTH_URL to change
#                             8883, 5671, http://127.0.0.1:8781)
#   rabbitmq.sh crl     DIR   after `fleet-certs revoke`: new handshakes check the revocation
#                             list of the certificates directory `start`/`etc` was given, and
#                             live sessions of newly revoked devices close
#   rabbitmq.sh ctl     DIR N ARGS...   rabbitmqctl against node N
#
# Settings for `start` (environment): LF_CERTS (directory with ca.crt, server.crt, server.key
# and crl.pem: `fleet-certs init`), LF_MQTT_PORTS, LF_AMQPS_PORTS, LF_DIST_PORTS (one port per
# node, space separated, e.g. "8881 8882 8883"), LF_AUTH_URLS (the broker-auth service each
# node asks, one base URL per node, e.g. "http://127.0.0.1:8781"), LF_CLUSTER (a name, unique
# on this machine: node names are lf-<cluster>-<n>@localhost).
set -euo pipefail

RMQ_BIN=/usr/lib/rabbitmq/bin
die() { echo "rabbitmq.sh: $*" >&2; exit 1; }
[ -x "$RMQ_BIN/rabbitmq-server" ] ||
  die "RabbitMQ is not installed: apt-get install rabbitmq-server (Debian 12 ships 3.10)"

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: rabbitmq.sh start|stop|kill|restart|etc|crl|ctl DIR [N]"

# Run as the rabbitmq user when started by root: the Debian package owns its files so, and
# the Erlang VM then cannot read anything of root's but what we hand it.
as_rabbitmq() {
  if [ "$(id -u)" = 0 ]; then runuser -u rabbitmq -- "$@"; else "$@"; fi
}

node_env() { # N -> ENV: the environment of node N, as `env` arguments
  local n=$1 name
  name=$(cat "$dir/cluster-name")
  ENV=(HOME="$dir/home"
    RABBITMQ_NODENAME="lf-$name-$n@localhost"
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    RABBITMQ_DIST_PORT="$(cat "$dir/n$n/dist-port")"
    RABBITMQ_CONFIG_FILE="$dir/n$n/rabbitmq.conf"
    RABBITMQ_ADVANCED_CONFIG_FILE="$dir/n$n/advanced.config"
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/n$n/enabled_plugins"
    RABBITMQ_MNESIA_BASE="$dir/n$n/mnesia"
    RABBITMQ_LOG_BASE="$dir/n$n/log"
    RABBITMQ_PID_FILE="$dir/n$n/beam.pid"
    ERL_EPMD_ADDRESS=127.0.0.1
    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}")
}

ctl() { # N ARGS...
  local n=$1; shift
  if [ -f "$dir/etc-node" ]; then # a real node (`etc`): its own settings, Debian's unit
    as_rabbitmq /usr/sbin/rabbitmqctl "$@"
    return
  fi
  node_env "$n"
  as_rabbitmq env "${ENV[@]}" "$RMQ_BIN/rabbitmqctl" -n "$(node_name "$n")" "$@"
}

node_name() { echo "lf-$(cat "$dir/cluster-name")-$1@localhost"; }

start_node() { # N
  local n=$1
  node_env "$n"
  # Each connection is a file descriptor: runuser's PAM session brings the soft limit back to
  # 1024, which stopped a node at about 830 cabinets. Up to the hard limit, as Debian's unit
  # does with LimitNOFILE=65536.
  as_rabbitmq env "${ENV[@]}" setsid bash -c \
    'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0"' "$RMQ_BIN/rabbitmq-server" \
    >>"$dir/n$n/log/stdout.log" 2>&1 &
  echo $! >"$dir/n$n/launcher.pid"
}

await_node() { # N
  local n=$1
  # await_startup gives up at once while the VM has not registered its name yet.
  local deadline=$((SECONDS + 150))
  until ctl "$n" await_startup --timeout 10 >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      tail -n 40 "$dir/n$n/log/stdout.log" >&2 || true
      die "node $n did not start; its logs are in $dir/n$n/log"
    fi
    sleep 0.5
  done
}

nodes() { cat "$dir/nodes"; }

# The revocation list where the nodes look for it: Erlang's ssl_crl_hash_dir finds a CRL by
# its issuer's name hash (OpenSSL's), as <hash>.r0, and reads it at each handshake.
install_crl() { # CERTS_DIR
  command -v openssl >/dev/null || die "openssl (the command) is needed to name the CRL file: apt-get install openssl"
  [ -r "$1/crl.pem" ] || die "$1/crl.pem missing: fleet-certs init writes it; for a directory made before, fleet-certs mosquitto --dir $1 writes one"
  local hash
  hash=$(openssl crl -hash -noout -in "$1/crl.pem") || die "$1/crl.pem is not a CRL"
  mkdir -p "$dir/crls"
  cp "$1/crl.pem" "$dir/crls/.next"
  mv "$dir/crls/.next" "$dir/crls/$hash.r0"
  chmod -R a+rX "$dir/crls"
}

# A node's settings in OUT: rabbitmq.conf, advanced.config, enabled_plugins. The same for the
# lab's nodes and for a real node's /etc/rabbitmq (`etc`).
node_config() { # OUT NAME MQTT_LISTENER AMQPS_LISTENER AUTH_URL TLS_DIR CRL_DIR
  local out=$1 name=$2 mqtt_at=$3 amqps_at=$4 auth_url=$5 tls=$6 crls=$7
  echo "[rabbitmq_mqtt,rabbitmq_consistent_hash_exchange,rabbitmq_auth_backend_http,rabbitmq_auth_mechanism_ssl]." \
    >"$out/enabled_plugins"
  cat >"$out/rabbitmq.conf" <<EOF
# LockerFleet broker node $name (written by deploy/cluster/rabbitmq.sh; ADR 0024).
# No plain listener: cabinets speak MQTT and replicas AMQP, both over mutual TLS.
listeners.tcp = none
listeners.ssl.default = $amqps_at
mqtt.listeners.tcp = none
mqtt.listeners.ssl.default = $mqtt_at
# Identity is the certificate's common name, for cabinets (MQTT) and replicas (AMQP EXTERNAL).
ssl_cert_login_from = common_name
auth_mechanisms.1 = EXTERNAL
mqtt.ssl_cert_login = true
mqtt.allow_anonymous = false
mqtt.vhost = /
mqtt.exchange = amq.topic
# Sessions a cabinet asks to keep survive a node (ours are clean; see ADR 0024).
mqtt.durable_queue_type = quorum
# Every decision (who may log in, with which client id, which topics) comes from broker-auth.
auth_backends.1 = http
auth_http.http_method = get
auth_http.user_path = $auth_url/broker-auth/user
auth_http.vhost_path = $auth_url/broker-auth/vhost
auth_http.resource_path = $auth_url/broker-auth/resource
auth_http.topic_path = $auth_url/broker-auth/topic
loopback_users = none
# A node cut off from the majority stops serving instead of diverging.
cluster_partition_handling = pause_minority
EOF
  # TLS in advanced.config: rabbitmq.conf cannot name a CRL cache. Every client certificate
  # is checked against the fleet's revocation list (crl_check peer: no list, no entry).
  cat >"$out/advanced.config" <<EOF
[{rabbit, [{ssl_options, [
  {cacertfile, "$tls/ca.crt"}, {certfile, "$tls/server.crt"},
  {keyfile, "$tls/server.key"}, {verify, verify_peer}, {fail_if_no_peer_cert, true},
  {crl_check, peer},
  {crl_cache, {ssl_crl_hash_dir, {internal, [{dir, "$crls"}]}}}]}]}].
EOF
}

case $cmd in
start)
  : "${LF_CERTS:?LF_CERTS: the certificates directory (fleet-certs init)}"
  read -r -a mqtt <<<"${LF_MQTT_PORTS:?LF_MQTT_PORTS: one MQTT port per node}"
  read -r -a amqps <<<"${LF_AMQPS_PORTS:?LF_AMQPS_PORTS: one AMQP port per node}"
  read -r -a dist <<<"${LF_DIST_PORTS:?LF_DIST_PORTS: one Erlang distribution port per node}"
  read -r -a auth <<<"${LF_AUTH_URLS:?LF_AUTH_URLS: the broker-auth base URL of each node}"
  count=${#mqtt[@]}
  [ "${#amqps[@]}" = "$count" ] && [ "${#dist[@]}" = "$count" ] && [ "${#auth[@]}" = "$count" ] ||
    die "LF_MQTT_PORTS, LF_AMQPS_PORTS, LF_DIST_PORTS and LF_AUTH_URLS must name as many nodes"
  for f in ca.crt server.crt server.key crl.pem; do
    [ -r "$LF_CERTS/$f" ] || die "$LF_CERTS/$f missing: create it with fleet-certs init --dir $LF_CERTS"
  done
  mkdir -p "$dir/home" "$dir/tls"
  (cd "$LF_CERTS" && pwd) >"$dir/certs-dir"
  install_crl "$LF_CERTS"
  cp "$LF_CERTS/revoked.txt" "$dir/revoked.seen" 2>/dev/null || : >"$dir/revoked.seen"
  echo "${LF_CLUSTER:-lf}" >"$dir/cluster-name"
  seq 1 "$count" | tr '\n' ' ' >"$dir/nodes"
  # The nodes of one cluster share an Erlang cookie; one made here, readable by them only.
  [ -f "$dir/home/.erlang.cookie" ] ||
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/home/.erlang.cookie"
  chmod 400 "$dir/home/.erlang.cookie"
  # The VM reads copies of the TLS material, not root's originals.
  cp "$LF_CERTS/ca.crt" "$LF_CERTS/server.crt" "$LF_CERTS/server.key" "$dir/tls/"
  for i in $(seq 0 $((count - 1))); do
    n=$((i + 1))
    mkdir -p "$dir/n$n/log" "$dir/n$n/mnesia"
    echo "${dist[$i]}" >"$dir/n$n/dist-port"
    node_config "$dir/n$n" "$n" "127.0.0.1:${mqtt[$i]}" "127.0.0.1:${amqps[$i]}" "${auth[$i]}" \
      "$dir/tls" "$dir/crls"
  done
  if [ "$(id -u)" = 0 ]; then chown -R rabbitmq:rabbitmq "$dir"; fi
  for n in $(nodes); do start_node "$n"; done
  for n in $(nodes); do await_node "$n"; done
  for n in $(nodes); do
    [ "$n" = 1 ] && continue
    ctl "$n" stop_app >/dev/null 2>&1
    ctl "$n" reset >/dev/null 2>&1
    ctl "$n" join_cluster "$(node_name 1)" >/dev/null 2>&1 || die "node $n could not join node 1; logs in $dir/n$n/log"
    ctl "$n" start_app >/dev/null 2>&1
  done
  ctl 1 enable_feature_flag all >/dev/null 2>&1
  # A cabinet's session queue (clean session, QoS 1: a durable auto-delete classic queue in
  # 3.10) lives on the node it connected to; were that node to die, the queue's record would
  # stay behind and refuse the cabinet on every other node until the dead one returns.
  # Mirrored on a second node, it is promoted there instead (ADR 0024).
  ctl 1 set_policy --apply-to queues lockerfleet-sessions '^mqtt-subscription-' \
    '{"ha-mode":"exactly","ha-params":2,"ha-sync-mode":"automatic","ha-promote-on-failure":"always","ha-promote-on-shutdown":"always"}' \
    >/dev/null 2>&1 || die "could not set the session queue policy"
  echo "cluster of $count nodes up: MQTT on ${mqtt[*]}, AMQP on ${amqps[*]}"
  ;;
stop)
  for n in $(nodes); do ctl "$n" stop >/dev/null 2>&1 || true; done
  for n in $(nodes); do
    pid=$(cat "$dir/n$n/beam.pid" 2>/dev/null || true)
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  done
  ;;
kill)
  n=${3:?node number}
  pid=$(cat "$dir/n$n/beam.pid" 2>/dev/null) || die "node $n has no pid file"
  kill -9 "$pid"
  ;;
restart)
  n=${3:?node number}
  start_node "$n"
  await_node "$n"
  ;;
etc)
  # A real node's settings under DIR (Debian: /etc/rabbitmq, read by rabbitmq-server.service):
  # MQTT on 8883 and AMQP on 5671 on every interface, broker-auth beside it on 8781.
  : "${LF_CERTS:?LF_CERTS: the certificates directory (fleet-certs init)}"
  for f in ca.crt server.crt server.key crl.pem; do
    [ -r "$LF_CERTS/$f" ] || die "$LF_CERTS/$f missing: create it with fleet-certs init --dir $LF_CERTS"
  done
  mkdir -p "$dir/tls"
  cp "$LF_CERTS/ca.crt" "$LF_CERTS/server.crt" "$LF_CERTS/server.key" "$dir/tls/"
  (cd "$LF_CERTS" && pwd) >"$dir/certs-dir"
  install_crl "$LF_CERTS"
  cp "$LF_CERTS/revoked.txt" "$dir/revoked.seen" 2>/dev/null || : >"$dir/revoked.seen"
  echo 1 >"$dir/nodes"
  : >"$dir/etc-node"
  node_config "$dir" "$(hostname)" "${LF_MQTT_LISTENER:-8883}" "${LF_AMQPS_LISTENER:-5671}" \
    "${LF_AUTH_URL:-http://127.0.0.1:8781}" "$dir/tls" "$dir/crls"
  if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then chown -R rabbitmq:rabbitmq "$dir"; fi
  chmod 0600 "$dir/tls/server.key"
  echo "wrote $dir/rabbitmq.conf, advanced.config, enabled_plugins, tls/ and crls/"
  ;;
crl)
  certs=$(cat "$dir/certs-dir")
  install_crl "$certs"
  # Handshakes from now on refuse the revoked certificates; a device revoked since the last
  # time also loses the session it has (it cannot come back with that certificate; one
  # re-issued by `fleet-certs issue --force` connects again).
  touch "$certs/revoked.txt"
  names=$(grep -vxF -f "$dir/revoked.seen" "$certs/revoked.txt" | grep -v '^#' |
    awk '$2 ~ /^[A-Za-z0-9._-]+$/ {printf "%s\"%s\"", (n++ ? "," : ""), $2}' || true)
  if [ -n "$names" ]; then
    # MQTT sessions are not AMQP connections (close_connection ignores them): end them
    # through the cluster-wide client id registry; a client id is its certificate's name.
    closed=""
    for n in $(nodes); do
      ctl "$n" eval "Revoked = [$names], [exit(P, kill) || {C, P} <- rabbit_mqtt_collector:list(), lists:member(C, Revoked)]." \
        >/dev/null 2>&1 && { closed=yes; break; }
    done
    [ -n "$closed" ] || die "no node answered: the sessions of $names are still open"
  fi
  cp "$certs/revoked.txt" "$dir/revoked.seen"
  ;;
ctl)
  n=${3:?node number}; shift 3
  ctl "$n" "$@"
  ;;
*) die "unknown command $cmd: start|stop|kill|restart|etc|crl|ctl" ;;
esac
