"""The only code that talks to git: the runner, the branch store, transactions, history."""
