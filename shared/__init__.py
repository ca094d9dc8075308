"""What the twins import, and only that: each module one job, and importing one changes nothing.

- `shared.data`: the datasets (MNIST and Fashion-MNIST from their files, the sum dataset).
- `shared.models`: the three networks, defined once.
- `shared.flags`: the command-line flags of every example, with their defaults and checks.
- `shared.exits`: how a run ends early (bad input, a nan loss, Ctrl-C), which DDP process speaks.
- `shared.checkpoint_files`: checkpoints written atomically, read once, refused when they
  cannot resume.
- `shared.checkpoint_plugin`: the Lightning and Fabric twins' checkpoint-IO plugin, which
  writes and reads every checkpoint file the way the plain twin does.
- `shared.blas`: MKL's matrix-product workspace reserved up front, so free memory cannot
  change a bit.
- `shared.seeding`: seeding by hand, as `seed_everything` does, and the generators' states.
- `shared.run_record`: the record of a run (its losses, accuracies and time), what the twins
  print, and `--metrics-out`.
- `shared.run_folders`: each run's own `version_N` folders for logs and checkpoints.
- `shared.lightning_callbacks`: the callbacks only the Lightning twins plug into their Trainer.

The tools around the lessons (the main job, the reader, the benchmark) live in `tools/`.
"""
