"""`make bench` (`python -m scripts.bench`): one module per measurement group; __main__ runs them and prints."""
