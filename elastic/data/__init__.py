"""Task data: sources (local files, the Hugging Face hub), tables, tokenization and augmentation."""
