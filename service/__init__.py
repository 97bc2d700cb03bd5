"""vidrec's service side: ingest, gateway, queue, worker, CLI.

Imports model_core, never the reverse.
"""
