#!/usr/bin/env bash
# Start one consortium member's Besu validator with node-config/<member>.toml.
# Single-host rehearsal: run ./rehearsal-init.sh once, then this script in four terminals.
# Extra arguments after <member> go to besu unchanged (e.g. --logging=DEBUG).
# Untested: no Besu binary was available where this was written (see README.md).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

members() {
  local f
  for f in "$here"/node-config/*.toml; do
    f="${f##*/}"
    printf '%s ' "${f%.toml}"
  done
}

usage() {
  echo "usage: $0 <member> [besu options...]   members: $(members)" >&2
  exit 2
}

[[ $# -ge 1 ]] || usage
member="$1"
shift
[[ "$member" =~ ^[a-z0-9-]+$ ]] || usage
config="$here/node-config/$member.toml"
[[ -f "$config" ]] || { echo "run-node.sh: unknown member '$member'" >&2; usage; }

if ! command -v besu >/dev/null 2>&1; then
  cat >&2 <<'EOF'
run-node.sh: 'besu' is not on PATH; nothing was started.
Install Hyperledger Besu (binary distribution from the Besu releases page; it needs a
Java 21+ runtime), put its bin/ directory on PATH, and check with: besu --version
EOF
  exit 127
fi

cd "$here"
for f in var/genesis.json "var/$member/data/key" var/static-nodes.json var/permissions_config.toml; do
  if [[ ! -f "$f" ]]; then
    echo "run-node.sh: missing $f; run ./rehearsal-init.sh first (README: Single-host rehearsal)" >&2
    exit 1
  fi
done

exec besu --config-file="$config" --profile=ENTERPRISE "$@"
