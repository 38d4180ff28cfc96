//! Transports that feed the live service and carry its changes out: the demo source and MQTT.

pub mod demo;
