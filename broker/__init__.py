"""The embedded MQTT broker: amqtt with imgate's authentication, ACL and presence."""
