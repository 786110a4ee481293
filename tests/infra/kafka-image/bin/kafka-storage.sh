#!/bin/bash
# As Apache Kafka's bin/kafka-storage.sh: format or inspect a KRaft log directory.
exec "$(dirname "$0")/kafka-run-class.sh" kafka.tools.StorageTool "$@"
