#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test Hearth: Mesa's lavapipe (Vulkan on
# the CPU) so wgpu finds an adapter without a GPU, and Debian's Chromium for browser tests
# (WebGPU on its software adapter).
# Idempotent; safe to source or run.
set -euo pipefail

need_apt=()
if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  need_apt+=(mesa-vulkan-drivers)
fi
if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then
  need_apt+=(libvulkan1)
fi
if [ ! -x /usr/bin/chromium ]; then
  need_apt+=(chromium)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
