import re

from virnucpro.models.catalog import catalog
from virnucpro.planning.classifier_choice import PUBLISHED_CHUNK_SIZES

CATALOG = catalog()


rule download_model:
    output:
        "resources/models/{path}",
    log:
        "logs/download_model/{path}.log",
    benchmark:
        "logs/benchmarks/download_model/{path}.tsv"
    wildcard_constraints:
        path="|".join(re.escape(path) for path in CATALOG),
    localrule: True  # not `localrules:`, whose names a module's prefix leaves unchanged
    params:
        entry=lambda wildcards: CATALOG[wildcards.path],
    script:
        "../scripts/download_model.py"


rule build_demo_models:
    output:
        esm2=multiext("resources/demo/esm2_t4_demo", ".pt", "-contact-regression.pt"),
        dnabert_s=multiext(
            "resources/demo/DNABERT-S-demo/",
            "config.json",
            "pytorch_model.bin",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
        ),
        classifiers=expand(
            "resources/demo/{size}_model.pth", size=PUBLISHED_CHUNK_SIZES
        ),
    log:
        "logs/build_demo_models.log",
    benchmark:
        "logs/benchmarks/build_demo_models.tsv"
    params:
        seed=0,
    script:
        "../scripts/build_demo_models.py"
