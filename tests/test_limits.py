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
        async with limiter.slot():  # capacity is back
            assert limiter.waiting == 0

    asyncio.run(scenario())


def test_api_keys_match_whole_keys_only():
    from service.api import _known_key

    assert _known_key("key-1", ["key-0", "key-1"])
    assert not any(_known_key(t, ["key-1"]) for t in ("key-", "key-1x", "", "ключ-1"))
