"""Read the instdecay prediction dataset (a Hub id or a local folder) as tables and seed-indexed tensors.

The dataset's format is declared in :mod:`instdecay.loaders.schema`: long ``predictions``, ``runs`` and
``instances`` tables in parquet, partitioned as ``data/<task>/<eval_set>/<size>.parquet``, with a
``manifest.json`` and a dataset card whose YAML ``configs:`` make ``datasets.load_dataset`` work directly.
"""

from .manifest import manifest_sha256
from .read import DEFAULT_REFERENCE, Tensor, load_instances, load_predictions, load_tensor, read_manifest, resolve

__all__ = ["DEFAULT_REFERENCE", "Tensor", "load_instances", "load_predictions", "load_tensor", "manifest_sha256",
           "read_manifest", "resolve"]
