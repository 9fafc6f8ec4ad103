"""Files: reading what users give (FASTA, FASTQ, compressed) and writing and checking what the
workflow makes (atomic writes, tables, HDF5 embeddings, the frame table and its shards), and
the damage and disk-full checks around them."""
