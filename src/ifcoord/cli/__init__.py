"""The command line: arguments in, exit codes and messages out."""
