"""The Streamlit dashboard's parts (the entry file is app/main.py): run index, artifact readers, charts, pages."""
