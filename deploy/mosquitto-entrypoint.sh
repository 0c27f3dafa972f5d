#!/bin/sh
# Start Mosquitto with the curtainwatch config: the password file is (re)written from the
# environment at every start, so passwords live in one place (.env), never in the image.
# Usage (docker-compose.yml runs this): MQTT_CURTAINWATCH_PASSWORD=... \
#   MQTT_ZIGBEE2MQTT_PASSWORD=... mosquitto-entrypoint.sh [mosquitto.conf]
set -eu
conf="${1:-/mosquitto/config/mosquitto.conf}"
passwd="${MOSQUITTO_PASSWD_FILE:-/etc/mosquitto/curtainwatch.passwd}"
: "${MQTT_CURTAINWATCH_PASSWORD:?set MQTT_CURTAINWATCH_PASSWORD (see .env.example)}"
: "${MQTT_ZIGBEE2MQTT_PASSWORD:?set MQTT_ZIGBEE2MQTT_PASSWORD (see .env.example)}"
umask 077
rm -f "$passwd"
touch "$passwd"
mosquitto_passwd -b "$passwd" curtainwatch "$MQTT_CURTAINWATCH_PASSWORD"
mosquitto_passwd -b "$passwd" zigbee2mqtt "$MQTT_ZIGBEE2MQTT_PASSWORD"
# Mosquitto drops root after start; it must still read the file.
chown mosquitto "$passwd" 2>/dev/null || true
exec mosquitto -c "$conf"
