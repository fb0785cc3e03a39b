"""Schemathesis fuzzes every operation of the live server's OpenAPI schema with valid-looking and
malformed input: it may be refused (4xx) but never crashes a request (5xx) or the server."""

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

pytestmark = pytest.mark.vllm


def cap_generation(case) -> None:
    # Valid chat requests reach the engine: keep their completions short so fuzzing stays quick.
    if isinstance(case.body, dict) and isinstance(case.body.get("max_tokens"), int):
        case.body["max_tokens"] = max(1, min(case.body["max_tokens"], 4))


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_fuzzing_finds_no_server_errors(server, mode):
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    failures, fuzzed = [], set()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7

    for op in operations:
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
        @given(case=op.as_strategy(generation_mode=mode))
        def run(case):
            cap_generation(case)
            response = case.call(timeout=60)
            if response.status_code >= 500:
                failures.append((case.method, case.path, response.status_code, response.text[:200]))

        try:
            run()
            fuzzed.add(op.label)
        except Unsatisfiable:
            # An operation with no inputs (GET /health) has nothing to make malformed.
            assert mode == schemathesis.GenerationMode.NEGATIVE, op.label
    posts = {"POST /v1/speech-chat", "POST /v1/chat/completions", "POST /v1/audio/transcriptions"}
    assert posts <= fuzzed, f"not fuzzed: {posts - fuzzed}"
    assert not failures, failures
    assert httpx.get(server.url + "/health").status_code == 200
    assert httpx.get(server.url + "/ready").status_code == 200
