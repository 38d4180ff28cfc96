//! Transports that feed the live service and carry its changes out: the demo source, MQTT, and
//! the replay load-test client.

pub mod actions;
pub mod demo;
pub mod mqtt;
pub mod replay;
