"""Read a `/metrics` answer (Prometheus' text format) with `prometheus_client`'s own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """The samples of one scrape: `value(name, **labels)` sums the samples of `name` whose
    labels include `labels` (0 when there is none)."""

    def __init__(self, text: str) -> None:
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]
        self.families = {family.name for family in text_string_to_metric_families(text)}

    def value(self, name: str, **labels: str) -> float:
        return sum(
            value
            for sample_name, sample_labels, value in self.samples
            if sample_name == name and labels.items() <= sample_labels.items()
        )
