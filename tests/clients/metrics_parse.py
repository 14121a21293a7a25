#!/usr/bin/env python3
"""Fetches a Prometheus endpoint and parses it with prometheus_client's own text parser (the
one Prometheus' Python client ships); prints every sample as JSON: name, labels, value.

A text the parser refuses fails the script, and with it the test."""

import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

url = sys.argv[1]
with urllib.request.urlopen(url, timeout=10) as response:
    assert response.status == 200, response.status
    content_type = response.headers.get("Content-Type", "")
    assert content_type.startswith("text/plain; version=0.0.4"), content_type
    text = response.read().decode("utf-8")

samples = []
for family in text_string_to_metric_families(text):
    assert family.name.startswith("wasmail_"), family.name
    for sample in family.samples:
        samples.append({"name": sample.name, "labels": dict(sample.labels), "value": sample.value})
print(json.dumps(samples))
