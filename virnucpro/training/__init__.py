"""Training a classifier: the training frames, the fit, the training job and the evaluation."""
