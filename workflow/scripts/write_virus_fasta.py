from virnucpro.lifeline import end_with_snakemake
from virnucpro.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.damage import removing_damaged_inputs  # noqa: E402 - after the log is open
from virnucpro.virus_fasta import write_virus_fasta  # noqa: E402

with removing_damaged_inputs():
    write_virus_fasta(
        snakemake.input.fasta,
        snakemake.input.parts,
        snakemake.input.records,
        snakemake.input.regions,
        snakemake.input.part_rows,
        snakemake.output.fna,
        workers=snakemake.threads,
    )
