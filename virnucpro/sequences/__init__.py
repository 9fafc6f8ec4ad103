"""The original's sequence work: chunking records and translating chunks in six frames (SPEC
§2-3)."""
