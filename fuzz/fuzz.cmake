# Fuzz targets (issue 7). Filled in by the fuzzing work.
