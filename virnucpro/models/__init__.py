"""The three models VirNucPro chains: DNABERT-S, ESM-2 and the MLP classifier."""
