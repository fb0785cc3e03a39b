#!/usr/bin/env bash
# The offline TTS voices the demo corpus is spoken with (adapters/data/corpus.py), from Debian:
# espeak-ng, MBROLA diphone voices (Debian's non-free area: MBROLA's licence forbids modification,
# not use) and Festival with two diphone voices and the CMU SLT HTS voice; `fortunes` gives the
# corpus its prose sentences (adapters/data/prose.py). Only retraining needs them; serving and the tests
# do not.
set -euo pipefail
PKGS="espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 festival festvox-kallpc16k festvox-rablpc16k festvox-us-slt-hts fortunes"
if command -v text2wave >/dev/null 2>&1 && [ -d /usr/share/games/fortunes ] && [ -d /usr/share/mbrola/us1 ] && [ -d /usr/share/mbrola/en1 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-tts: need root and apt-get to install: $PKGS" >&2
  exit 1
fi
if ! apt-cache show mbrola-us1 >/dev/null 2>&1; then
  codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
  echo "setup-tts: enabling Debian's contrib and non-free areas for $codename (MBROLA voices)"
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$codename" > /etc/apt/sources.list.d/aura-tts.sources
  rm -f /etc/apt/sources.list.d/aura-nonfree.sources
  apt-get update -q >/dev/null
fi
echo "setup-tts: installing $PKGS"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PKGS >/dev/null
