"""sweep: Hydra study configs -> Ray execution -> Parquet result sets -> scaling curves."""
