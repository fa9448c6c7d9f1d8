#!/bin/bash
# Trains gpt for 2000 steps in segments of one evaluation each (the process's memory grows
# with every step on lavapipe), resuming from the checkpoint each time.
cd /tmp/lmseg
export XDG_RUNTIME_DIR=/tmp
C=/tmp/lmseg/gpt.st
for seg in 1 2 3 4 5 6 7 8; do
  extra=""
  [ -f $C ] && extra="--resume $C"
  ./kiln train --model gpt --text /usr/share/games/fortunes --steps 2000 --seed 1 --lr 6e-3 --checkpoint $C $extra --metrics-json /tmp/lmseg/gpt-metrics.json > seg$seg.log 2>&1 &
  pid=$!
  while kill -0 $pid 2>/dev/null; do
    if grep -q "^step" seg$seg.log; then sleep 2; kill $pid; break; fi
    sleep 2
  done
  wait $pid 2>/dev/null
  grep "^step" seg$seg.log
  grep -q "validation .* bits per character after 2000 steps" seg$seg.log && break
done
echo DONE
