"""The elastic network: its configuration, the BERT modules we own, backbone adapters, weights and extraction.

Torch-only; knows nothing of data, training or run directories beyond the checkpoint files it reads and writes."""
