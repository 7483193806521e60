"""Entry points of the MLproject: thin click commands, one per step."""
