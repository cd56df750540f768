"""Datasets out of a reconstruction: COLMAP sparse models, nerfstudio transforms, per-frame depth files."""
