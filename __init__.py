"""instdecay: instance-level evaluation of pretrained language-model ladders.

Subpackages
-----------
instdecay.evaluate   noise-corrected statistics (``.stats``: numpy/scipy only), submissions and reports
instdecay.loaders    read the prediction dataset as tables and seed-indexed tensors
instdecay.generate   finetune size x pretraining-seed x finetuning-seed grids (extra ``[generate]``)
instdecay.release    build, validate and push the public dataset
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("instdecay")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
