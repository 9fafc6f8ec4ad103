"""The result record every benchmark prints and keeps: what ran, where, and what it measured."""

import datetime
import json
import sys


def save(benchmark, device, out, **measured):
    """Print the record as JSON and write it to `out` (a Path) when one is given."""
    record = {
        "benchmark": benchmark,
        "date": datetime.date.today().isoformat(),
        "device": device,
        "command": " ".join(["python", *sys.argv]),
        **measured,
    }
    text = json.dumps(record, indent=2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    return record
