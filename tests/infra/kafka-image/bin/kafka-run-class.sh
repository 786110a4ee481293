#!/bin/bash
# Launcher of a Kafka class, with the interface of Apache Kafka's bin/kafka-run-class.sh that
# the chart relies on: KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_LOG4J_OPTS, KAFKA_OPTS,
# LOG_DIR, JAVA_HOME, and the leading options -name NAME, -loggc and -daemon (-daemon is refused:
# a container's process stays in the foreground).
set -e
base_dir="$(cd "$(dirname "$0")/.." && pwd)"
gc_log=""
while [ $# -gt 0 ]; do
  case "$1" in
    -name) daemon_name="$2"; shift 2 ;;
    -loggc) gc_log=1; shift ;;
    -daemon) echo "kafka-run-class.sh: -daemon is not supported in this image" >&2; exit 1 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "USAGE: $0 [-name NAME] [-loggc] classname [opts]" >&2; exit 1; }
LOG_DIR="${LOG_DIR:-$base_dir/logs}"
mkdir -p "$LOG_DIR"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx256M}"
KAFKA_JVM_PERFORMANCE_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true}"
if [ -n "$gc_log" ]; then
  KAFKA_GC_LOG_OPTS="-Xlog:gc*:file=$LOG_DIR/${daemon_name:-kafka}-gc.log:time,tags:filecount=10,filesize=100M"
fi
java="java"
[ -z "$JAVA_HOME" ] || java="$JAVA_HOME/bin/java"
# shellcheck disable=SC2086 # the *_OPTS variables are word lists by contract
exec "$java" $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS $KAFKA_GC_LOG_OPTS $KAFKA_LOG4J_OPTS \
  -cp "$base_dir/libs/*" $KAFKA_OPTS "$@"
