"""Schemathesis fuzzes every operation of the live server's OpenAPI schema with valid-looking and
malformed input (benchmarks.fuzz; `make fuzz` runs thousands of cases): a case may be refused (4xx)
but never crashes a request (5xx) or the server."""

import pytest

from benchmarks.fuzz import fuzz

pytestmark = pytest.mark.vllm


def test_fuzzing_finds_no_server_errors(server):
    result = fuzz(server.url, cases=150)  # 25 per model route and generation mode
    posts = {"POST /v1/speech-chat", "POST /v1/chat/completions", "POST /v1/audio/transcriptions"}
    assert len(result["statuses"]) >= 7 and posts <= {op for op, counts in result["statuses"].items() if counts}
    assert not result["server_errors"], result["server_errors"]
    assert result["reached_engine"] > 0, "no generated request reached the engine"
    assert (result["health_after"], result["ready_after"]) == (200, 200)
