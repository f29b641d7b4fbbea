"""Management commands for ``sr_models`` (train, evaluate, score, ship weights) with the site's settings.

``sr_models`` never imports Django; these commands only fill defaults from the settings and call it.
"""
