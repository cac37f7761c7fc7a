"""The ``trustledger`` command line: a thin shell over the ledger, credit and API libraries.

:mod:`cli.main` builds the parser and maps errors to exit codes; each group of commands lives in
its own module. Run it as ``trustledger`` (the console script) or ``python -m cli``. Nothing in
:mod:`api` imports this package: the dependencies run from the CLI to the service, never back.
"""
