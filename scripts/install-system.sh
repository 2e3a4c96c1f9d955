#!/usr/bin/env bash
# Installs the Debian packages ISR and its tests use, only when one is missing, so a
# machine that has them all does not pay for `apt-get update`.
set -euo pipefail
runtime=(python3 python3-venv alsa-utils ca-certificates)
testing=(icecast2 nginx ffmpeg vorbis-tools opus-tools flac mp3val streamripper chromium chromium-l10n curl liquidsoap ices2 ezstream darkice docker.io docker-compose mmdebstrap)
benchmarks=(rclone)
want=("${runtime[@]}")
[ "${1:-}" = "--test" ] && want+=("${testing[@]}")
[ "${1:-}" = "--bench" ] && want+=("${testing[@]}" "${benchmarks[@]}")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# axe-core for the browser tests comes from the npm registry; any Node.js with npm will do.
if [ "${1:-}" != "" ] && ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
