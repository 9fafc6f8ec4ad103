"""The stages, one module each, a pure function of files to files that a rule's script calls:
prepare, embed, aggregate, outputs, samples_table. No stage imports another."""
