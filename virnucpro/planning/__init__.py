"""What the plan (virnucpro.plan) and the rules ask before a run: the sample and training
sheets read and checked, each sample's classifier, the shards a sample needs, the job slots
of a local run."""
