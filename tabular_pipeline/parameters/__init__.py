"""Parameters: what each entry point declares (read from MLproject), click options built from
it, and safe parsing of untrusted `name=value;...` strings."""
