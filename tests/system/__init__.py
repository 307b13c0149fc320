"""The product end to end: the command line, bad input, crashes and interrupts, experiments, the reference run,
the documentation site."""
