#!/usr/bin/env bash
# Installs the Debian packages Aurora's build and tests need, when they are missing.
# Called by scripts/dev.sh (the README's commands); safe to run again: it installs nothing twice.
set -euo pipefail

packages=(
  libboost1.81-dev      # Asio, Beast (headers)
  libboost-json1.81-dev # JSON writer/serializer
  libboost-program-options1.81-dev # command-line flags
  libsimdjson-dev       # JSON parsing of configs and requests
  libpcre2-dev          # tokenizer: Hugging Face pre-tokenizer regexes (\p{L}, lookahead)
  libicu-dev            # tokenizer: NFC/NFKC normalizers, Unicode character classes
  catch2                # tests (2.13)
  ninja-build           # build driver
  cmake
  g++
  curl                  # integration tests (real client)
)
if [[ "${AURORA_WITH_FUZZ:-1}" == 1 ]]; then
  packages+=(clang)     # libFuzzer targets
fi
if [[ "${AURORA_WITH_NODE:-1}" == 1 ]]; then
  packages+=(nodejs npm) # the official openai client in integration tests
fi
if [[ "${AURORA_WITH_BROWSER:-1}" == 1 ]]; then
  packages+=(chromium)  # headless: the /dashboard test (tests/integration/online)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# node/npm may come from outside Debian's packages (e.g. a preinstalled Node.js): accept those.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi

if (( ${#missing[@]} )); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
else
  echo "install-deps: all packages present"
fi
