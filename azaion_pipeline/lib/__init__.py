"""Plain-Python building blocks of the pipeline. Nothing under lib/ imports dagster."""
