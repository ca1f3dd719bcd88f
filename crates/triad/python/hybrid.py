"""The seed's HybridTaskExecutor (section 8.2), as the seed writes it, on the standard library.

aiohttp is replaced by a minimal HTTP/1.1 GET on asyncio streams (one connection per request,
as aiohttp's session would open them to a local server); everything else is the seed's code:
gather every fetch, then every computation on a ProcessPoolExecutor, then every save.

    python3 hybrid.py --url http://127.0.0.1:PORT/data/ --documents 200

Prints the time and "records/s: N". The triad example `hybrid` starts the server and runs this.
"""

import argparse
import asyncio
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from urllib.parse import urlsplit


async def http_get_json(url):
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{url}: {head.splitlines()[0]!r}")
    return json.loads(body)


class HybridTaskExecutor:
    """混合任务执行器"""

    def __init__(self, max_processes=4):
        self.process_executor = ProcessPoolExecutor(max_workers=max_processes)

    async def execute_hybrid_pipeline(self, data_sources):
        """执行混合流水线"""
        # 步骤1：并发获取数据（I/O密集）
        fetch_tasks = [self.fetch_data(source) for source in data_sources]
        raw_data = await asyncio.gather(*fetch_tasks)

        # 步骤2：并行处理数据（CPU密集）
        loop = asyncio.get_event_loop()
        process_tasks = [
            loop.run_in_executor(self.process_executor, self.process_data, data)
            for data in raw_data
        ]
        processed_data = await asyncio.gather(*process_tasks)

        # 步骤3：并发保存结果（I/O密集）
        save_tasks = [self.save_result(result) for result in processed_data]
        await asyncio.gather(*save_tasks)

        return processed_data

    async def fetch_data(self, source):
        """获取数据（I/O密集 - 协程）"""
        return await http_get_json(source)

    @staticmethod
    def process_data(data):
        """处理数据（CPU密集 - 进程）"""
        return {"processed": sum(item**2 for item in range(100000)), "original": data}

    async def save_result(self, result):
        """保存结果（I/O密集 - 协程）"""
        await asyncio.sleep(0.1)
        return True

    def shutdown(self):
        self.process_executor.shutdown()


async def main(url, documents):
    executor = HybridTaskExecutor(max_processes=os.cpu_count() or 1)
    # The pool's workers start on first use; start them before the clock, as triad's do.
    await asyncio.get_event_loop().run_in_executor(executor.process_executor, abs, 0)
    sources = [f"{url}{n}" for n in range(documents)]
    started = time.perf_counter()
    results = await executor.execute_hybrid_pipeline(sources)
    seconds = time.perf_counter() - started
    executor.shutdown()
    assert len(results) == documents
    print(f"CPython HybridTaskExecutor: {documents} documents in {seconds:.2f} s")
    print(f"records/s: {documents / seconds:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--documents", type=int, default=200)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.url, arguments.documents))
