"""Export of a sub-network as a standalone Hugging Face model directory, with its model card."""
