#!/usr/bin/env bash
# Starts the real pcscd with vsmartcard's vpcd driver and waits until vpcd listens for a vicc on TCP 35963.
# Idempotent: does nothing when vpcd already listens. Needs root (pcscd's socket lives in /run/pcscd).
# Env: VPCD_PORT (default 35963, the port in /etc/reader.conf.d/vpcd: CHANNELID 0x8C7B), PCSCD_WAIT (seconds, 15),
#      PCSCD_LOG (default /tmp/jpki-pcscd.log).
set -euo pipefail

port="${VPCD_PORT:-35963}"
wait_s="${PCSCD_WAIT:-15}"
log="${PCSCD_LOG:-/tmp/jpki-pcscd.log}"

die() {
  echo "pcscd.sh: $*" >&2
  exit 1
}

# LISTEN check through /proc (no connection: a probe connect would look like a card insertion to vpcd).
listening() {
  local hexport
  hexport=$(printf '%04X' "$port")
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v p=":$hexport" '$2 ~ p"$" && $4 == "0A" { found = 1 } END { exit !found }'
}

if listening; then
  echo "pcscd.sh: vpcd already listens on port $port"
  exit 0
fi

pcscd_bin=$(command -v pcscd || true)
[ -n "$pcscd_bin" ] || { [ -x /usr/sbin/pcscd ] && pcscd_bin=/usr/sbin/pcscd; }
[ -n "$pcscd_bin" ] || die "pcscd is not installed (apt-get install pcscd vsmartcard-vpcd)"

driver=""
for d in /usr/lib/pcsc/drivers/serial/libifdvpcd.so /usr/lib/*/pcsc/drivers/serial/libifdvpcd.so /usr/local/lib/pcsc/drivers/serial/libifdvpcd.so; do
  [ -e "$d" ] && { driver="$d"; break; }
done
[ -n "$driver" ] || die "vsmartcard's vpcd driver (libifdvpcd.so) is missing (apt-get install vsmartcard-vpcd)"

# pcscd reads serial readers from reader.conf.d; the Debian package installs one for vpcd on 0x8C7B = 35963.
confdir=/etc/reader.conf.d
if ! grep -qs libifdvpcd "$confdir"/* || [ "$port" != 35963 ]; then
  confdir=$(mktemp -d /tmp/jpki-reader.conf.XXXXXX)
  printf 'FRIENDLYNAME "Virtual PCD"\nDEVICENAME   /dev/null:0x%04X\nLIBPATH      %s\nCHANNELID    0x%04X\n' \
    "$port" "$driver" "$port" >"$confdir/vpcd"
  echo "pcscd.sh: using reader configuration $confdir/vpcd"
fi

# Running pcscd processes, read from /proc (procps may be absent on a fresh box).
pcscd_pids() {
  local f
  for f in /proc/[0-9]*/comm; do
    [ "$(cat "$f" 2>/dev/null)" = pcscd ] && { f=${f#/proc/}; echo "${f%/comm}"; }
  done
  return 0
}

start_pcscd() {
  mkdir -p /run/pcscd
  # -f foreground under setsid/nohup so it outlives this script; -c another reader.conf.d when needed.
  local args=(-f)
  [ "$confdir" = /etc/reader.conf.d ] || args=(-f -c "$confdir")
  setsid nohup "$pcscd_bin" "${args[@]}" >"$log" 2>&1 </dev/null &
  echo "pcscd.sh: started $pcscd_bin ${args[*]} (pid $!, log $log)"
}

# A pcscd already running may still be starting, or stopping (after SIGTERM it lingers a moment): wait, and start
# one as soon as none runs. Two starts at most, so a pcscd that dies at once is reported, not retried forever.
starts=0
pid=$(pcscd_pids)
[ -n "$pid" ] && echo "pcscd.sh: pcscd already runs (pid $(echo "$pid" | tr '\n' ' ')); waiting for vpcd on port $port"
for ((i = 0; i < wait_s * 10; i++)); do
  if listening; then
    echo "pcscd.sh: vpcd listens on port $port"
    exit 0
  fi
  if [ -z "$(pcscd_pids)" ] && [ "$starts" -lt 2 ]; then
    start_pcscd
    starts=$((starts + 1))
  fi
  sleep 0.1
done

echo "pcscd.sh: last lines of $log:" >&2
tail -n 20 "$log" >&2 2>/dev/null || true
die "vpcd did not listen on TCP port $port within ${wait_s}s (is vsmartcard-vpcd configured in $confdir?)"
