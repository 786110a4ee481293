#!/usr/bin/env bash
# Fetches an Apache Kafka broker (jars only) and a logging binding from Maven Central into the
# cache, and prints the Kafka home (which holds libs/*.jar) on the last stdout line.
# Idempotent and safe to run concurrently: a warm run only checks a stamp file.
set -euo pipefail
KAFKA_VERSION="${KAFKA_VERSION:-4.1.2}"
CACHE="${VOLATILITY_CACHE:-$HOME/.cache/volatility}"
HOME_DIR="$CACHE/kafka-$KAFKA_VERSION"
STAMP="$HOME_DIR/.provisioned"
POM="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kafka/pom.xml"

if [ -f "$STAMP" ]; then echo "$HOME_DIR"; exit 0; fi

command -v mvn >/dev/null || { echo "provision-kafka: mvn not found on PATH" >&2; exit 1; }
command -v java >/dev/null || [ -x "${JAVA_HOME:-/nonexistent}/bin/java" ] \
  || { echo "provision-kafka: java not found (Kafka $KAFKA_VERSION needs Java 17+)" >&2; exit 1; }

mkdir -p "$CACHE"
# Serialise concurrent first runs (parallel test sessions) on one lock per version.
exec 9>"$CACHE/.kafka-$KAFKA_VERSION.lock"
flock 9
if [ -f "$STAMP" ]; then echo "$HOME_DIR"; exit 0; fi

tmp="$(mktemp -d "$CACHE/.kafka-$KAFKA_VERSION.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# Maven's own progress goes to stderr so the last stdout line stays the Kafka home.
mvn -B -q -f "$POM" \
  -Dkafka.version="$KAFKA_VERSION" \
  -DoutputDirectory="$tmp/libs" \
  dependency:copy-dependencies >&2

# Fail here rather than at broker start if the resolution came back incomplete.
for jar in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-clients-$KAFKA_VERSION.jar" "kafka-server-$KAFKA_VERSION.jar"; do
  [ -f "$tmp/libs/$jar" ] || { echo "provision-kafka: $jar missing after mvn" >&2; exit 1; }
done
ls "$tmp/libs"/log4j-slf4j-impl-*.jar >/dev/null 2>&1 \
  || { echo "provision-kafka: logging binding missing after mvn" >&2; exit 1; }

rm -rf "$HOME_DIR"
mv "$tmp" "$HOME_DIR"
chmod 755 "$HOME_DIR"
echo "kafka $KAFKA_VERSION: $(ls "$HOME_DIR/libs" | wc -l) jars" > "$STAMP"
echo "$HOME_DIR"
