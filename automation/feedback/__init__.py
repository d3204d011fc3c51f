"""Feedback: provider results and our tracking -> message status -> contact -> segments.

``callbacks`` applies parsed provider callbacks (provider-neutral records from
``channels/<provider>.py``); ``results`` records one result on a message once, moves
its status forward, suppresses and unsubscribes.
"""
