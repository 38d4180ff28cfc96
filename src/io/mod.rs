//! Transports that feed the live service and carry its changes out: the demo source, MQTT, and
//! the replay load-test client.

pub mod actions;
#[cfg(feature = "cli")]
pub mod demo;
pub mod mqtt;
#[cfg(feature = "cli")]
pub mod replay;
