"""Making a model: configuration, data, network, fit, evaluation and card (``model.train``)."""
