"""The viral sequences of a sample as FASTA: every record called virus, whole, and every viral
region as its own record, named `<record>|region_<start>_<end>` (1-based, inclusive) so that it
traces back to its record and place; a region that is a whole record written whole is not
written twice."""

import itertools

from .atomic import atomic_open
from .fasta import read_records, write_wrapped
from .tables import read_tsv


def write_virus_fasta(fasta, records_tsv, regions_tsv, out_fna):
    """Read the sample's FASTA again beside its records table (both in input order)."""
    regions = itertools.groupby(read_tsv(regions_tsv), key=lambda region: region.record_id)
    pending = next(regions, None)
    with atomic_open(out_fna) as handle:
        for record, row in itertools.zip_longest(read_records(fasta), read_tsv(records_tsv)):
            if record is None or row is None or record.id != row.record_id:
                raise ValueError(f"{records_tsv} does not list the records of {fasta} in order")
            whole = row.call == "virus"
            if whole:
                header = (
                    f"{row.record_id} length={row.length} best_virus_score={row.best_virus_score}"
                )
                write_wrapped(handle, header, record.sequence)
            if pending is not None and pending[0] == record.id:
                for region in pending[1]:
                    start, end = int(region.start), int(region.end)
                    if whole and (start, end) == (1, len(record.sequence)):
                        continue
                    header = (
                        f"{region.region_id} record_length={row.length} "
                        f"mean_virus_score={region.mean_virus_score} "
                        f"best_virus_score={region.best_virus_score}"
                    )
                    write_wrapped(handle, header, record.sequence[start - 1 : end])
                pending = next(regions, None)
    if pending is not None:
        raise ValueError(f"{regions_tsv} names {pending[0]}, which is not in order in {fasta}")
