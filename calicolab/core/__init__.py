"""The ground floor: the one cluster configuration (config, versions rules, paths), the run
folder's state, errors that end a task in one line, local commands (shell), the one way to
reach a node (remote, nodes), polling with deadlines, privilege flags, command-line numbers and
the one table renderer. Imports nothing else of the project."""
