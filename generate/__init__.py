"""Produce per-run prediction shards: importers for existing releases (no torch needed) and, with the
``[generate]`` extra, finetuning grids."""
