"""Loading configuration files into validated values, with errors that name file and line."""
