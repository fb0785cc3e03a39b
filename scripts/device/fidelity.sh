#!/usr/bin/env bash
# There, on the lent GPU machine (no network, the image's python3 with torch/transformers/peft/
# accelerate): the oracle-vs-AuRA fidelity run of issue 12. The runbook is scripts/device/README.md.
#
#   fidelity.sh receive   move the pack chunks this call carried out of the repository copy, where
#                         the next call would replace them, into $STAGE (kept while the machine is warm)
#   fidelity.sh setup     join and check the pack; install wheels and TTS; build the models; speak the corpus
#   fidelity.sh train     the oracle and AuRA side by side on the one GPU, then dev WER of each; results in $OUT
#
# Knobs (environment): CORPUS_ARGS (adapters.data.corpus flags), BATCH, STEPS, MINUTES, EXTRA (more
# `aura distill` flags for the AuRA run, e.g. a recipe change under test). For a rehearsal on the
# development machine: PY=.venv/bin/python WHEELS=0 (its Python is not 3.12) TTS_ROOT=/tmp/x STAGE=/tmp/y.
set -euo pipefail
cd "$(dirname "$0")/../.."
STAGE=${STAGE:-/root/aura-stage}
SITE=$STAGE/site
PY=${PY:-python3}
OUT=${OUT:-$STAGE/out}
export PYTHONPATH=$SITE:$PWD PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
mkdir -p "$STAGE" "$OUT"
log() { echo "[$(date +%T)] $*"; }

receive() {
  shopt -s nullglob
  for f in artifacts/device-pack/chunk-* artifacts/device-pack/pack.sha256; do mv -f "$f" "$STAGE"/; done
  log "staged: $(cd "$STAGE" && ls chunk-* 2>/dev/null | tr '\n' ' ')"
}

setup() {
  [ -f "$STAGE"/pack.sha256 ] || { echo "setup: $STAGE/pack.sha256 missing: carry artifacts/device-pack/pack.sha256 with a chunk" >&2; exit 1; }
  if [ ! -d "$STAGE"/pack ]; then
    log "joining $(ls "$STAGE"/chunk-* | wc -l) chunks"
    cat "$STAGE"/chunk-* > "$STAGE"/pack.tar
    (cd "$STAGE" && sha256sum -c pack.sha256) || { echo "setup: the pack is incomplete or damaged; stage every chunk again" >&2; exit 1; }
    mkdir -p "$STAGE"/pack && tar -C "$STAGE"/pack -xf "$STAGE"/pack.tar && rm "$STAGE"/pack.tar "$STAGE"/chunk-*
  fi
  log "wheels"
  [ "${WHEELS:-1}" = 0 ] || $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$STAGE"/pack/wheels/*.whl
  log "TTS packages: unpacked, then copied without replacing anything the image has"
  rm -rf "$STAGE"/tts && mkdir -p "$STAGE"/tts
  for d in "$STAGE"/pack/debs/*.deb; do dpkg -x "$d" "$STAGE"/tts; done
  cp -rn "$STAGE"/tts/. "${TTS_ROOT:-/}" && ldconfig
  espeak-ng -v mb-us1 -w "$STAGE"/check-mbrola.wav "turn on the kitchen lights"
  echo "turn on the kitchen lights" | text2wave -o "$STAGE"/check-festival.wav
  log "models"
  [ -f artifacts/demo/gemma-3-270m/config.json ] || $PY -c "from adapters.weights.demo_models import gemma_from_gguf as g; \
g('$STAGE/pack/gemma-3-270m-q4_k_m.gguf', 'artifacts/demo/gemma-3-270m')"
  [ -f artifacts/demo/whisper-base-encoder/config.json ] || \
    $PY scripts/device/teacher_weights.py unpack "$STAGE"/pack/whisper-encoder artifacts/demo/whisper-base-encoder
  log "corpus (${CORPUS_ARGS:-defaults}) on $(nproc) cores"
  [ -f artifacts/corpus/train.jsonl ] || $PY -m adapters.data.corpus artifacts/corpus --workers "$(nproc)" ${CORPUS_ARGS:-}
  wc -l artifacts/corpus/*.jsonl
}

train() {
  local batch=${BATCH:-32} steps=${STEPS:-2100} minutes=${MINUTES:-7}
  local common="--teacher artifacts/demo/whisper-base-encoder --llm artifacts/demo/gemma-3-270m
    --manifest artifacts/corpus/train.jsonl --eval-fraction 0.01 --stride 8 --lora-lr 4e-4
    --batch-size $batch --steps $steps --max-minutes $minutes --eval-every 200 --save-every 200 --no-progress"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || log "no GPU: a rehearsal on CPU"
  log "oracle and AuRA side by side: batch $batch, $steps steps, at most $minutes min each"
  local logs=$STAGE/logs && mkdir -p "$logs"
  $PY -m adapters.cli distill $common --oracle --output artifacts/train/oracle > "$logs"/oracle.log 2>&1 &
  local oracle=$!
  $PY -m adapters.cli distill $common ${EXTRA:-} --output artifacts/train/aura > "$logs"/aura.log 2>&1 || echo "AuRA run failed"
  wait $oracle || echo "oracle run failed"
  tail -n 3 "$logs"/oracle.log "$logs"/aura.log
  for run in oracle aura; do
    log "dev WER: $run"
    $PY -m adapters.cli evaluate artifacts/train/$run/best --output "$logs"/$run-dev.json >/dev/null 2>"$logs"/$run-eval.log \
      || tail -5 "$logs"/$run-eval.log
    $PY -c "import json; r = json.load(open('$logs/$run-dev.json')); print('$run', {k: r.get(k) for k in ('clips', 'wer', 'audio_gap')})" || true
  done
  # What comes back (at most 8 files of 16 MiB): logs and run records in one archive, and the AuRA adapter.
  tar -czf "$OUT"/records.tar.gz -C "$STAGE" logs -C "$PWD" $(ls artifacts/train/*/aura.json artifacts/train/*/best/aura.json 2>/dev/null)
  cp artifacts/train/aura/best/audio_embed.safetensors "$OUT"/ 2>/dev/null || true
  cp artifacts/train/aura/best/lora/adapter_model.safetensors "$OUT"/lora_adapter_model.safetensors 2>/dev/null || true
  ls -la "$OUT"
}

case "${1:-}" in
  receive) receive ;;
  setup) setup ;;
  train) train ;;
  *) sed -n 2,13p "$0"; exit 2 ;;
esac
