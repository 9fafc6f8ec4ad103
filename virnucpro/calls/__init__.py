"""From frames' scores to calls: scoring with the classifier, calling chunks and records, viral
regions, calibration, the FP8 gate's fidelity, the work of one part of a sample and the
viral sequences."""
