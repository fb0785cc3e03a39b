import asyncio

import pytest

from service.errors import APIError
from service.limits import ConcurrencyLimiter


def test_full_queue_is_429_and_timeout_is_503():
    async def scenario():
        limiter = ConcurrencyLimiter(max_concurrency=1, max_queue=1, queue_timeout_s=0.2)
        await limiter.acquire()  # the one running request
        waiter = asyncio.create_task(limiter.acquire())  # queued
        await asyncio.sleep(0.01)
        with pytest.raises(APIError) as full:
            await limiter.acquire()
        assert full.value.status == 429 and full.value.headers["Retry-After"]
        with pytest.raises(APIError) as late:
            await waiter
        assert late.value.status == 503 and late.value.headers["Retry-After"]
        limiter.release()
        await limiter.acquire()  # capacity is back
        assert limiter.waiting == 0

    asyncio.run(scenario())


def test_api_keys_match_whole_keys_only():
    from service.middleware import known_key

    assert known_key("key-1", ["key-0", "key-1"])
    assert not any(known_key(t, ["key-1"]) for t in ("key-", "key-1x", "", "ключ-1"))


class _Stub:
    """Just enough of a request for api.run_to_completion."""

    def __init__(self, disconnects: bool):
        self.disconnects = disconnects

    async def is_disconnected(self) -> bool:
        return self.disconnects


def test_a_client_that_leaves_is_499_but_a_server_cancellation_stays_one():
    from service.api import run_to_completion

    async def client_leaves():
        stub = _Stub(disconnects=True)
        with pytest.raises(APIError) as e:
            await run_to_completion(stub, asyncio.sleep(60))
        return e.value.status

    assert asyncio.run(client_leaves()) == 499

    async def server_shuts_down():
        stub = _Stub(disconnects=False)
        task = asyncio.ensure_future(run_to_completion(stub, asyncio.sleep(60)))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(server_shuts_down())


def test_engine_failures_keep_internal_details_in_the_log(caplog):
    from service.engines.remote import RemoteEngineError
    from service.pipeline import engine_failure

    internal = RemoteEngineError("cannot reach the remote vLLM at http://10.0.0.7:8000: ConnectError(...)")
    e = engine_failure(internal)
    assert e.status == 502 and "10.0.0.7" not in e.body()["error"]["message"]
    assert "10.0.0.7" in caplog.text
    e = engine_failure(RuntimeError("token /srv/secret/path"))
    assert e.status == 500 and "/srv/secret" not in e.body()["error"]["message"]
    refused = RemoteEngineError('remote vLLM answered 400: {"error": {"message": "max_tokens is too large"}}', 400,
                                "max_tokens is too large")
    e = engine_failure(refused)
    assert e.status == 400 and e.body()["error"]["message"].endswith("max_tokens is too large")


def test_api_keys_from_a_file_and_a_public_address_without_keys_warns(tmp_path):
    from pydantic import ValidationError

    from service.settings import Settings

    keys = tmp_path / "keys"
    keys.write_text("# the ops team's keys\nkey-a\n\n  key-b \n")
    s = Settings(api_keys="key-0", api_keys_file=str(keys))
    assert s.api_keys == ["key-0", "key-a", "key-b"]
    assert s.exposure_warning() is None and Settings().exposure_warning() is None  # keys, or loopback only
    assert "no API key" in Settings(host="0.0.0.0").exposure_warning()
    (tmp_path / "empty").write_text("\n# nothing\n")
    for path, match in ((tmp_path / "empty", "holds no key"), (tmp_path / "missing", "No such file")):
        with pytest.raises(ValidationError, match=match):
            Settings(api_keys_file=str(path))
