"""The model side: loading, quantising and saving Hugging Face models with adapters (`models`), the project's
tiny model (`tiny_model`), the prompt layout shared by training and sampling (`prompting`), and GPU helpers
(`gpu`)."""
