"""The tables the preparing stage writes for the aggregation (results/{sample}/prepare/), by
their columns: input_records.tsv (each input record), chunk_frames.tsv (each chunk and its
frames) and parts.tsv (the parts the aggregation's workers take, as byte ranges of the two)."""

INPUT_RECORD_COLUMNS = ("record_id", "length", "chunks", "reason")
CHUNK_FRAME_COLUMNS = ("chunk_id", "record_id", "start", "end", "length", "frames", "reason")
PART_COLUMNS = (
    "part",
    "records",
    "chunks",
    "frames",
    "first_ordinal",  # of the part's first frame in the frame table
    "records_start",  # bytes of the part's rows in input_records.tsv, [start, end)
    "records_end",
    "chunks_start",  # ... in chunk_frames.tsv
    "chunks_end",
    "text_start",  # ... of its records in the input's (decompressed) text
    "text_end",
    "first_line",  # the line of the input its text starts on, for errors found by line
)
