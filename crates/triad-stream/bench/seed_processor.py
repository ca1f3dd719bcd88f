"""The seed's RealtimeDataProcessor (section 7.3) on redis.asyncio, the successor of the
aioredis it was written for: subscribe, and for every message `asyncio.create_task` of
process_message -- a 10 ms "save to the database" wait, then a 20 ms "push to a service"
wait, then the handlers. Only measurement is added: each finished message's latency from
the `ts` (microseconds) in its payload, and on SIGTERM one JSON line with the counts and
latency quantiles.

    python seed_processor.py REDIS_URL CHANNEL
"""

import asyncio
import json
import signal
import sys
import time

import redis.asyncio as aioredis


class RealtimeDataProcessor:
    """实时数据处理系统"""

    def __init__(self, url):
        self.url = url
        self.redis = None
        self.handlers = []
        self.received = 0
        self.latencies = []

    async def connect(self):
        self.redis = aioredis.from_url(self.url)

    async def process_message(self, message):
        data = message.get("data")
        await self.save_to_db(data)
        await self.push_to_service(data)
        for handler in self.handlers:
            await handler(data)
        # measurement, not the seed's
        self.latencies.append(time.time() - json.loads(data)["ts"] / 1e6)

    async def save_to_db(self, data):
        await asyncio.sleep(0.01)

    async def push_to_service(self, data):
        await asyncio.sleep(0.02)

    async def run(self, channels, stop):
        await self.connect()
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(*channels)
        tasks = set()
        while not stop.is_set():
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message:
                self.received += 1
                # 不等待处理完成，继续接收下一条 (the seed keeps no reference; a set keeps
                # the tasks from being collected early, as asyncio's docs ask)
                task = asyncio.create_task(self.process_message(message))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        await asyncio.sleep(0.5)


def quantile(values, q):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def main():
    url, channel = sys.argv[1], sys.argv[2]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    processor = RealtimeDataProcessor(url)
    await processor.run([channel], stop)
    print(json.dumps({
        "received": processor.received,
        "committed": len(processor.latencies),
        "latency_p50": quantile(processor.latencies, 0.5),
        "latency_p99": quantile(processor.latencies, 0.99),
        "latency_max": max(processor.latencies, default=0.0),
    }), flush=True)


asyncio.run(main())
