#!/usr/bin/env bash
# Turns off delayed ACKs on the loopback routes (route attribute quickack, Linux ≥ 3.11), best effort.
# Why: vsmartcard-vpcd writes each command in two send()s (length, then payload) with Nagle on; the payload waits for
# the ACK of the length, which Linux delays ~40 ms on the vicc's side, so every APDU through pcscd + vpcd costs 44 ms
# (BENCHMARKS.md). With quickack on lo it costs ~0.25 ms and the vpcd test files take seconds instead of minutes.
# Needs root (CAP_NET_ADMIN) and iproute2; without them the tests still pass, only slower. Changes only table local's
# 127.0.0.0/8 and 127.0.0.1 routes, until the next reboot.
set -uo pipefail

ip_bin=$(command -v ip || true)
[ -n "$ip_bin" ] || { echo "quickack.sh: iproute2 missing (apt-get install iproute2); vpcd stays at ~44 ms per APDU"; exit 0; }
ok=1
for dst in 127.0.0.0/8 127.0.0.1; do
  route=$("$ip_bin" route show table local "$dst" dev lo 2>/dev/null | head -n 1)
  [ -n "$route" ] || { ok=0; continue; }
  case "$route" in *quickack\ 1*) continue ;; esac
  # The route as shown (type local first; the dev filter drops "dev lo" from the output), with the attribute added.
  "$ip_bin" route change table local $route dev lo quickack 1 2>/dev/null || ok=0
done
if [ "$ok" = 1 ]; then
  echo "quickack.sh: delayed ACKs off on lo ($("$ip_bin" route show table local 127.0.0.1 dev lo | head -n 1))"
else
  echo "quickack.sh: could not set quickack on lo (not root or no CAP_NET_ADMIN?); vpcd stays at ~44 ms per APDU"
fi
exit 0
