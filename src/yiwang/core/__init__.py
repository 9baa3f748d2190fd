"""The shared kernel: settings, database, org tree, accounts, audit, events and jobs.

``core`` imports no domain module; domain modules build on it.
"""
