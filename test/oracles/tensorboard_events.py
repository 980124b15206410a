"""Reads every scalar of the event files in a folder with TensorBoard's own EventAccumulator (no sampling:
size_guidance 0 keeps all points) and prints {tag: [[step, value, wall_time], ...]} as JSON."""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

acc = EventAccumulator(sys.argv[1], size_guidance={SCALARS: 0})
acc.Reload()
print(json.dumps({tag: [[e.step, e.value, e.wall_time] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}))
