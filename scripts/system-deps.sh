#!/usr/bin/env bash
# Installs the Debian packages that building and testing demls need, if they are missing:
# libssl-dev and pkg-config, because SQLCipher (bundled by rusqlite, docs/node.md "Encryption at
# rest") links the system's libcrypto; iproute2, whose `ip` gives the mDNS test a network
# namespace of its own (crates/transport/tests/mdns.rs) and builds the testbed's namespaces
# (scripts/testbed.sh); nftables, whose `nft` gives the testbed's links loss and cuts them for
# a partition. Uses sudo when not run as root. On a
# system without dpkg it only says what it would need.
set -euo pipefail

packages=(libssl-dev pkg-config iproute2 nftables)
if ! command -v dpkg-query >/dev/null; then
    echo "== not a Debian system: make sure ${packages[*]} (or their equivalents) are installed"
    exit 0
fi
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then exit 0; fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then as_root=(sudo); fi
echo "== apt-get install ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
