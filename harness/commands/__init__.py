"""One module per `python -m harness <command>` (harness.cli dispatches to them): argument parsing, the
run folder, and the calls into the packages below; no method logic of their own."""
