"""Training: the options of each stage, the one loop, the losses, rewiring, the stages, students and the job runner.

Kept empty on purpose: `elastic.training.options` and `elastic.training.stage_options` are torch-free and
imported by the command-line parsers."""
