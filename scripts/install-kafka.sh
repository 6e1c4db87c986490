#!/usr/bin/env bash
# Apache Kafka (KRaft) from Maven Central jars into a cache outside the repository (idempotent).
# Prints the directory holding the jars. Override with KAFKA_VERSION / MITIGA_CACHE.
set -euo pipefail
KAFKA_VERSION="${KAFKA_VERSION:-3.9.1}"
CACHE="${MITIGA_CACHE:-$HOME/.cache/mitiga}"
DEST="$CACHE/kafka-$KAFKA_VERSION"
if [ -f "$DEST/.complete" ]; then echo "$DEST/lib"; exit 0; fi
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cat > "$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.mitiga</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
    <dependency><groupId>ch.qos.reload4j</groupId><artifactId>reload4j</artifactId><version>1.2.25</version></dependency>
  </dependencies>
</project>
POM
rm -rf "$DEST" && mkdir -p "$DEST/lib"
mvn -q -B -f "$work/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$DEST/lib" >&2
touch "$DEST/.complete"
echo "$DEST/lib"
