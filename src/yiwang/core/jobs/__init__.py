"""Periodic jobs registered by modules, claimed through the database so that several
workers never run the same job at the same moment."""
