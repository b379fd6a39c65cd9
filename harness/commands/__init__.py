"""One module per `python -m harness <command>` (harness.cli dispatches to them by name): the options,
the run folder, and the calls into the packages below. gpu_check is run as its own module
(`python -m harness.commands.gpu_check`, `make gpu-check`)."""
