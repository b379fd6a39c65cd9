"""What a train stage optimises: candidate scores (`scoring`), the ranking loss and its data (`ranking`),
float32 log-probabilities (`logprobs`), the trainer (`trainer`) and the optimiser and learning-rate schedule
(`schedule`)."""
