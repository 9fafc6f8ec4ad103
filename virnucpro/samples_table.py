"""One row per sample for the whole run (`results/samples.tsv`): what each sample holds and the
settings its calls were made with, so that samples of one run compare at a glance."""

from collections import Counter

from .atomic import atomic_open
from .tables import read_tsv, tsv_writer

COUNT_COLUMNS = ("records", "virus", "others", "unscored", "regions")


def tabulate_samples(samples, out_tsv):
    """`samples`: {sample: (records_tsv, settings)}, settings a flat {name: value} whose names
    are the same for every sample (they become columns after the counts)."""
    setting_names = list(next(iter(samples.values()))[1]) if samples else []
    with atomic_open(out_tsv) as handle:
        table = tsv_writer(handle)
        table.writerow(("sample", *COUNT_COLUMNS, *setting_names))
        for sample, (records_tsv, settings) in samples.items():
            counts = Counter()
            for record in read_tsv(records_tsv):
                counts["records"] += 1
                counts[record.call] += 1
                counts["regions"] += int(record.regions)
            table.writerow(
                (
                    sample,
                    *(counts[name] for name in COUNT_COLUMNS),
                    *(_text(settings[name]) for name in setting_names),
                )
            )


def _text(value):
    return "NA" if value is None else value
