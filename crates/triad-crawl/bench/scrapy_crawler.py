"""Scrapy on the same local site, configured as the seed's crawler is: CONCURRENT_REQUESTS and
the per-domain limit both at the concurrency, no delay, robots.txt not asked for (the site has
none), every <a href> followed through Scrapy's LinkExtractor, its default dupefilter.

    python scrapy_crawler.py URL MAX_PAGES CONCURRENCY
"""
import sys
import time

from scrapy import Spider
from scrapy.crawler import CrawlerProcess
from scrapy.linkextractors import LinkExtractor

URL, MAX_PAGES, CONCURRENCY = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
PAGES = []


class Site(Spider):
    name = "site"
    start_urls = [URL]
    links = LinkExtractor()

    def parse(self, response):
        PAGES.append(response.url)
        for link in self.links.extract_links(response):
            yield response.follow(link.url, callback=self.parse)


process = CrawlerProcess(settings={
    "CONCURRENT_REQUESTS": CONCURRENCY,
    "CONCURRENT_REQUESTS_PER_DOMAIN": CONCURRENCY,
    "DOWNLOAD_DELAY": 0,
    "ROBOTSTXT_OBEY": False,
    "CLOSESPIDER_PAGECOUNT": MAX_PAGES,
    "LOG_LEVEL": "ERROR",
    "TELNETCONSOLE_ENABLED": False,
    "COOKIES_ENABLED": False,
    "RETRY_ENABLED": False,
})
start = time.time()
process.crawl(Site)
process.start()
print(f"pages {len(PAGES)} seconds {time.time() - start:.3f}")
