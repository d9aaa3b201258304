"""The model: entry points and the pieces training and serving share.

Top level: the commands (``python -m model.train``, ``model.evaluate``, ``model.publish``,
``model.promote``, ``model.datasets``, ``model.inference``) and what both sides must agree
on: :mod:`model.preprocess` (the only pixel preparation), :mod:`model.store` (published
versions, candidates, promotion records and ``current``) and :mod:`model.card` (the card's
contract). :mod:`model.training` makes a model; :mod:`model.serving` runs one fast in the
worker. Neither imports the other, except the int8 export and the backend check, which read
the training data's splits (:mod:`model.serving.export`, :mod:`model.serving.selection`).
"""
