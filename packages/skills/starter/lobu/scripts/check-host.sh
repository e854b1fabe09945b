#!/bin/sh
# Usage: check-host.sh <host> [path]
# Says whether <host> is reachable through the Lobu egress proxy right now and,
# when it is not, prints the proxy's reason.
host=${1:?usage: check-host.sh <host> [path]}
path=${2:-/}
out=$(mktemp)
code=$(curl -sS -o "$out" -w '%{http_code}' --max-time 20 "https://$host$path" 2>&1)
status=$?
if [ "$status" -ne 0 ]; then
  echo "unreachable: $code"
  head -c 500 "$out"
elif [ "$code" = "403" ] || [ "$code" = "502" ]; then
  echo "refused ($code):"
  head -c 500 "$out"
  echo
  echo "If the reason says the host is not allowed, ask for it with request_capability (kind domain)."
else
  echo "reachable: HTTP $code from https://$host$path"
fi
rm -f "$out"
