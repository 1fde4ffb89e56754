"""`python -m app.config > examples/run.toml`: the example config file, generated from the fields."""
from app.config.files import render_example

print(render_example(), end="")
