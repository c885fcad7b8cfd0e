"""Tracing backends behind `selfsim.interp.tracing`: shared types in `base`, the name -> class
registry in `registry`, one module per backend (`hooks`, `nnsight_backend`, `tlens_backend`)."""
