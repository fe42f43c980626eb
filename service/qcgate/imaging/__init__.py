"""From DICOM instances to scores: per-frame geometry, stacks (volumes), and the scoring pipeline."""
