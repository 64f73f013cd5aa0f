#!/usr/bin/env bash
# Debian packages the tests need. Installs only what is missing (apt-get update only then);
# needs root (or sudo) to install. Idempotent and quiet when everything is there.
#   fonts-dejavu-core  fonts for rendered text in images
#   chromium           the browser test of the Dagster UI (driven by pip's playwright; no
#                      browser download: executable_path=/usr/bin/chromium)
#   postgresql         a throw-away PostgreSQL server for the Postgres-backed instance test
set -euo pipefail
packages=(fonts-dejavu-core chromium postgresql)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
# The tests only use the postgres binaries (initdb, pg_ctl) on a temporary data directory.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null
