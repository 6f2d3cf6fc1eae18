#!/usr/bin/env bash
# Installs the Debian data packages xmodal's built-in tasks read (Fashion-MNIST, WordNet),
# when they are missing and apt is usable. Prints what to run by hand otherwise.
set -euo pipefail
packages=(dataset-fashion-mnist wordnet-base)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "note: missing Debian packages ${missing[*]}; install them with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
