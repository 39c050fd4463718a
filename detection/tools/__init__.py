"""Development and evaluation tools for the detection core; not used in production.

``replay`` composes a scripted webcam stream from the committed test photos
(``python -m detection bench`` and the cascade tests replay it), and
``evalset`` generates a labelled evaluation set and scores the checks on it
(``python -m detection make-evalset`` and ``evaluate``).

They use ``detection.core``; the core and the Django side never import them.
"""
