"""Reading a service's Prometheus `/metrics` page into numbers the autoscaler can use.

Every sample of a family is summed over its label sets (the autoscaler sizes a whole process,
so `edge_batches_acknowledged_total{shard=...}` becomes one number). Histogram buckets and
`_created` timestamps are dropped; a histogram's `_sum` and `_count` are kept, which is enough
for a mean latency between two scrapes.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.parser import text_string_to_metric_families

MAX_PAGE_BYTES = 4 * 1024 * 1024


class ScrapeError(RuntimeError):
    """A metrics page could not be fetched or parsed."""


@dataclass(frozen=True)
class Scrape:
    """One metrics page: sample name -> value summed over labels, taken at `at_s`."""

    at_s: float
    values: dict[str, float]


def parse_metrics(text: str) -> dict[str, float]:
    """Sample name -> sum over label sets, from the Prometheus text exposition format.

    Raises:
        ScrapeError: the text is not in the exposition format.
    """
    totals: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.endswith(("_bucket", "_created")):
                    continue
                totals[sample.name] = totals.get(sample.name, 0.0) + float(sample.value)
    except ValueError as exc:
        raise ScrapeError(f"not a Prometheus metrics page: {exc}") from exc
    return totals


class MetricsSource(Protocol):
    """Where metrics pages come from (HTTP in production, canned pages in tests)."""

    def fetch(self, url: str) -> str:
        """The page at `url`.

        Raises:
            ScrapeError: it could not be read.
        """
        ...


class HttpMetricsSource:
    """Fetches pages over HTTP with a deadline and a size bound."""

    def __init__(self, timeout_s: float = 2.0) -> None:
        self.timeout_s = timeout_s

    def fetch(self, url: str) -> str:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                body: bytes = response.read(MAX_PAGE_BYTES + 1)
        except (OSError, urllib.error.URLError) as exc:
            raise ScrapeError(f"{url}: {exc}") from exc
        if len(body) > MAX_PAGE_BYTES:
            raise ScrapeError(f"{url}: page larger than {MAX_PAGE_BYTES} bytes")
        return body.decode("utf-8", errors="replace")
