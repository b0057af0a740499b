#!/bin/bash
# print each worker's received messages (rr: successive connections go round)
for i in $(seq 1 ${1:-8}); do curl -s --max-time 2 http://127.0.0.1:26415/msgs; done | sort -u
