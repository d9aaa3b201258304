"""``pneumonia-score``: score a folder of chest X-rays through the prediction API.

For a study, an audit of the model on local data, or a backlog: every PNG/JPEG/DICOM in a
folder is uploaded with the service token, every result waited for and written to a CSV; a
folder laid out as NORMAL/ and PNEUMONIA/ also gets AUC, sensitivity and specificity with
bootstrap intervals. One module per concept:

- :mod:`pneumonia_score.settings` where the API is and the token (environment, then flags)
- :mod:`pneumonia_score.client`   upload one file, read one result, with retries
- :mod:`pneumonia_score.journal`  the CSV, written as results arrive, read back to resume
- :mod:`pneumonia_score.stats`    AUC, sensitivity, specificity and bootstrap intervals
- :mod:`pneumonia_score.cli`      the command: find files, upload, wait, write, summarise
"""
