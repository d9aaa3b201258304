#!/usr/bin/env bash
# The `trainer` process of `make up`: trains and publishes a first model only when the store
# has none, so a newcomer gets a working system without waiting at a terminal. Uploads made
# meanwhile wait in the queue. It then stays idle (honcho stops the stack when a process ends).
set -uo pipefail
store=${MODEL_STORE:-var/models}
data=${DATA:-../shared/data/chest_xray_224}
if [ -s "$store/current" ]; then
  echo "model $(cat "$store/current") is published; nothing to train (retrain: make model)"
elif [ ! -d "$data" ]; then
  echo "No model in $store and no training data at $data."
  echo "Get the Kermany chest X-ray data (doi:10.17632/rscbjbr9sj.2), then run:"
  echo "  make model DATA=/path/to/chest_xray"
else
  echo "No model yet: training one in the background from $data (about 20 minutes)."
  echo "Uploads are accepted now and complete once the model is published."
  nice -n 5 python -m model.train --recipe local-cpu --data "$data" --publish "$store" \
    || echo "Training failed; see the messages above. Retry with: make model"
fi
exec sleep infinity
