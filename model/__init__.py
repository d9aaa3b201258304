"""The model: entry points and the pieces training and serving share.

Top level: the commands (``python -m model.train``, ``model.evaluate``, ``model.publish``,
``model.promote``, ``model.inference``) and what both sides must agree on: :mod:`model.preprocess` (the only
pixel preparation), :mod:`model.store` (published versions and ``current``) and
:mod:`model.card` (the card's contract). :mod:`model.training` makes a model;
:mod:`model.serving` runs one fast in the worker. Neither imports the other, except the int8
export, which calibrates on the training split (:mod:`model.serving.export`).
"""
