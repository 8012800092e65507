"""Run and schedule records: the typed models (:mod:`.models`) and the store they live in (:mod:`.store`).

The bottom layer: nothing here imports targets, services, the CLI or the server.
"""
