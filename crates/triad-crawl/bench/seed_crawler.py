"""The seed's AsyncWebCrawler (§7.1), as written; only main() takes the start URL, the page
limit and the concurrency from the command line, and prints the count as a number.

    python seed_crawler.py URL MAX_PAGES CONCURRENCY
"""
import asyncio
import sys
import time

import aiohttp
from bs4 import BeautifulSoup


class AsyncWebCrawler:
    """异步网络爬虫"""

    def __init__(self, max_concurrent=10):
        self.max_concurrent = max_concurrent
        self.semaphore = asyncio.Semaphore(max_concurrent)
        self.session = None

    async def fetch(self, url):
        """获取单个URL"""
        async with self.semaphore:
            try:
                async with self.session.get(url, timeout=10) as response:
                    html = await response.text()
                    return url, html
            except Exception as e:
                print(f"Error fetching {url}: {e}")
                return url, None

    async def parse(self, url, html):
        """解析HTML"""
        if not html:
            return []

        soup = BeautifulSoup(html, 'html.parser')
        links = []
        for link in soup.find_all('a'):
            href = link.get('href')
            if href:
                links.append(href)
        return links

    async def crawl(self, start_urls, max_pages=100):
        """爬取网站"""
        visited = set()
        to_visit = set(start_urls)
        results = []

        async with aiohttp.ClientSession() as session:
            self.session = session

            while to_visit and len(visited) < max_pages:
                # 批量获取当前待访问的URL
                current_batch = list(to_visit)[:self.max_concurrent]
                to_visit -= set(current_batch)

                # 并发获取
                fetch_tasks = [self.fetch(url) for url in current_batch]
                pages = await asyncio.gather(*fetch_tasks)

                # 解析并提取新链接
                for url, html in pages:
                    if html:
                        visited.add(url)
                        links = await self.parse(url, html)

                        # 添加新发现的链接
                        new_links = set(links) - visited - to_visit
                        to_visit.update(new_links)

                        results.append((url, len(links)))

        return results


async def main():
    url, max_pages, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    crawler = AsyncWebCrawler(max_concurrent=concurrency)
    start = time.time()
    results = await crawler.crawl([url], max_pages=max_pages)
    elapsed = time.time() - start
    print(f"pages {len(results)} seconds {elapsed:.3f}")


asyncio.run(main())
