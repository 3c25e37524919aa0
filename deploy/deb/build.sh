#!/usr/bin/env bash
# Builds the Debian packages from binaries already built:
#   lockerfleet-server  fleet-server, fleet-certs, the server unit, /etc/lockerfleet/server.toml
#   lockerfleet-agent   device-agent, the agent unit, /etc/lockerfleet/agent.toml
#   lockerfleet-console fleet-console
# Usage: deploy/deb/build.sh OUT_DIR [BIN_DIR [DEB_ARCH [PACKAGES]]]
#   BIN_DIR   where the binaries are (default target/release; the cross-built agent:
#             target/aarch64-unknown-linux-gnu/cabinet with DEB_ARCH arm64)
#   DEB_ARCH  amd64 (default) or arm64
#   PACKAGES  which to build (default "server agent console"; arm64: "agent")
# The units are the ones in deploy/ with the programs in /usr/bin. Each package creates the
# `lockerfleet` system user on install; none starts its service by itself (the server needs
# its certificates, the agent its cabinet's; README, "Debian packages").
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${1:?usage: build.sh OUT_DIR [BIN_DIR [DEB_ARCH [PACKAGES]]]}"
BIN="${2:-$ROOT/target/release}"
ARCH="${3:-amd64}"
PACKAGES="${4:-server agent console}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
[ -n "$VERSION" ] || { echo "!! no version in $ROOT/Cargo.toml" >&2; exit 1; }
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

need() {
  for b in "$@"; do
    [ -x "$BIN/$b" ] || { echo "!! $BIN/$b is not built (cargo build --release -p ...)" >&2; exit 1; }
  done
}

# The user every package's service runs as; kept on removal (its files may remain).
POSTINST_USER='
if ! getent group lockerfleet >/dev/null; then addgroup --system lockerfleet >/dev/null; fi
if ! getent passwd lockerfleet >/dev/null; then
  adduser --system --ingroup lockerfleet --home /nonexistent --no-create-home \
    --gecos "LockerFleet" lockerfleet >/dev/null
fi'

# package NAME DESCRIPTION DEPENDS: control file, scripts, then dpkg-deb.
package() {
  local name="$1" description="$2" depends="$3" stage="$4"
  local size
  size="$(du -sk "$stage" | cut -f1)"
  mkdir -p "$stage/DEBIAN"
  cat > "$stage/DEBIAN/control" <<CONTROL
Package: $name
Version: $VERSION
Architecture: $ARCH
Maintainer: LockerFleet developers <dev@lockerfleet.invalid>
Installed-Size: $size
Depends: $depends
Section: misc
Priority: optional
Homepage: https://github.com/lockerfleet/lockerfleet
Description: $description
CONTROL
  if [ -d "$stage/etc" ]; then
    (cd "$stage" && find etc -type f | sed 's|^|/|') > "$stage/DEBIAN/conffiles"
  fi
  chmod 0755 "$stage"/DEBIAN/post* 2>/dev/null || true
  fakeroot dpkg-deb --build -Zxz "$stage" "$OUT/${name}_${VERSION}_${ARCH}.deb" >/dev/null
  echo "$OUT/${name}_${VERSION}_${ARCH}.deb"
}

unit() { # unit SRC DEST: a unit of deploy/ with its programs in /usr/bin
  sed 's|/usr/local/bin/|/usr/bin/|g' "$ROOT/deploy/$1" > "$2"
}

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

for p in $PACKAGES; do
  s="$WORK/$p"
  mkdir -p "$s/usr/bin" "$s/usr/share/doc/lockerfleet-$p"
  cp "$ROOT/LICENSE" "$s/usr/share/doc/lockerfleet-$p/copyright" 2>/dev/null ||
    echo "Apache-2.0; https://github.com/lockerfleet/lockerfleet" > "$s/usr/share/doc/lockerfleet-$p/copyright"
  case "$p" in
    server)
      need fleet-server fleet-certs
      install -m 0755 "$BIN/fleet-server" "$BIN/fleet-certs" "$s/usr/bin/"
      mkdir -p "$s/lib/systemd/system" "$s/etc/lockerfleet"
      unit lockerfleet-server.service "$s/lib/systemd/system/lockerfleet-server.service"
      install -m 0640 "$ROOT/deploy/deb/server.toml" "$s/etc/lockerfleet/server.toml"
      mkdir -p "$s/DEBIAN"
      cat > "$s/DEBIAN/postinst" <<POST
#!/bin/sh
set -e
$POSTINST_USER
chgrp lockerfleet /etc/lockerfleet/server.toml
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
echo "lockerfleet-server: make the certificates (fleet-certs init --dir /etc/lockerfleet/certs),"
echo "  edit /etc/lockerfleet/server.toml, then: systemctl enable --now lockerfleet-server"
POST
      cat > "$s/DEBIAN/postrm" <<'POST'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
POST
      package lockerfleet-server \
        "LockerFleet fleet server (ingest, alarms, commands, HTTP API)" \
        "libc6 (>= 2.31), adduser" "$s"
      ;;
    agent)
      need device-agent
      install -m 0755 "$BIN/device-agent" "$s/usr/bin/"
      mkdir -p "$s/lib/systemd/system" "$s/etc/lockerfleet"
      unit lockerfleet-agent.service "$s/lib/systemd/system/lockerfleet-agent.service"
      install -m 0640 "$ROOT/deploy/agent.toml" "$s/etc/lockerfleet/agent.toml"
      mkdir -p "$s/DEBIAN"
      cat > "$s/DEBIAN/postinst" <<POST
#!/bin/sh
set -e
$POSTINST_USER
# Serial lock boards are in the dialout group.
if getent group dialout >/dev/null; then adduser lockerfleet dialout >/dev/null || true; fi
chgrp lockerfleet /etc/lockerfleet/agent.toml
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
echo "lockerfleet-agent: put the cabinet's certificate in /etc/lockerfleet/certs, set id and"
echo "  server in /etc/lockerfleet/agent.toml, check with: device-agent doctor --config /etc/lockerfleet/agent.toml"
echo "  then: systemctl enable --now lockerfleet-agent"
POST
      cat > "$s/DEBIAN/postrm" <<'POST'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
POST
      package lockerfleet-agent \
        "LockerFleet device agent for a locker cabinet (locks, sensors, outbox)" \
        "libc6 (>= 2.31), adduser" "$s"
      ;;
    console)
      need fleet-console
      install -m 0755 "$BIN/fleet-console" "$s/usr/bin/"
      package lockerfleet-console "LockerFleet operator console (terminal)" "libc6 (>= 2.31)" "$s"
      ;;
    *) echo "!! unknown package $p (server, agent, console)" >&2; exit 1 ;;
  esac
done
