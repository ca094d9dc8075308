"""What the twins import, and only that: each module one job, and importing one changes nothing.

- `shared.registry`: the one list of the examples (in ladder order) and the twins.
- `shared.data`: the datasets (MNIST and Fashion-MNIST from their files, the sum dataset).
- `shared.models`: the three networks, defined once.
- `shared.flags`: the command-line flags of every example, with their defaults and checks.
- `shared.machine_checks`: the flags checked against the machine (paths, devices, launcher).
- `shared.run_end`: how a run ends early (bad input, a nan loss, Ctrl-C): one line, a status.
- `shared.process_setup`: what a process sets up before `main()` (BLAS, Lightning's log lines).
- `shared.divergence`: step 2's stop at a loss that turns nan or infinite.
- `shared.ranks`: which of DDP's processes this one is, so that one of them speaks.
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

The hand-written features the plain and Fabric twins share live in `by_hand/`; the tools
around the lessons (the main job, the reader, the benchmark) live in `tools/`.
"""
