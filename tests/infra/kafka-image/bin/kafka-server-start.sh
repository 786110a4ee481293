#!/bin/bash
# As Apache Kafka's bin/kafka-server-start.sh: run a broker/controller on a properties file.
if [ $# -lt 1 ]; then
  echo "USAGE: $0 server.properties [--override property=value]*" >&2
  exit 1
fi
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}"
EXTRA_ARGS=${EXTRA_ARGS-'-name kafkaServer -loggc'}
# shellcheck disable=SC2086 # EXTRA_ARGS is a word list by contract
exec "$(dirname "$0")/kafka-run-class.sh" $EXTRA_ARGS kafka.Kafka "$@"
