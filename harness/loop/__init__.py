"""The ITERTL loop: the iteration driver (`loop`), its stages (`stages`, `train_stage`), where a train
stage runs (`dispatch`: in this process, or under `accelerate launch` by `launch` and `train_worker`), the
candidates' diagnostics (`diagnostics`) and DRY_RUN's compute estimate (`compute`)."""
