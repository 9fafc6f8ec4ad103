from virnucpro.lifeline import end_with_snakemake
from virnucpro.logs import log_to

log_to(snakemake.log[0])
end_with_snakemake()

from virnucpro.virus_fasta import write_virus_fasta  # noqa: E402 - after the log is open

write_virus_fasta(
    snakemake.input.fasta,
    snakemake.input.records,
    snakemake.input.regions,
    snakemake.output.fna,
)
