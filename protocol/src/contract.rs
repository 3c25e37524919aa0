//! The device protocol as a machine-readable contract: an AsyncAPI 3.0 document whose JSON
//! Schemas are generated from this crate's message types, so the contract cannot drift from
//! the code. `protocol/asyncapi.json` is this document written out (a test keeps it current)
//! for cabinet vendors who write their own firmware and validate against it.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::message::{
    CertReply, CertRequest, CodeSync, Command, CommandAck, ConfigSync, DiagnosticsReport,
    DiagnosticsRequest, EventBatch, FetchRequest, Heartbeat, Presence, Receipt, StateSnapshot,
    Update,
};
use crate::topic::{self, Channel};
use crate::{PROTOCOL_VERSION, message::MAX_EVENTS_PER_BATCH};

/// Where the JSON Schemas live inside the document (their `$ref`s point there).
pub const SCHEMAS: &str = "/components/schemas";

/// How one channel is used: from the device's side, as the document is written.
struct Use {
    /// The message type's name (its schema and message component).
    message: &'static str,
    /// The device publishes (`send`) or subscribes (`receive`).
    device_sends: bool,
    /// The QoS the device publishes or subscribes with.
    qos: u8,
    /// Whether the device's publishes are retained.
    retain: bool,
    summary: &'static str,
}

/// The one place that says which message travels on which channel. Exhaustive, so a new
/// channel does not compile until it is in the contract.
fn channel_use(c: Channel) -> Use {
    let (message, device_sends, qos, retain, summary) = match c {
        Channel::Events => (
            "EventBatch",
            true,
            1,
            false,
            "Batches of sequenced events; the server answers with a receipt once they are stored.",
        ),
        Channel::State => (
            "StateSnapshot",
            true,
            1,
            true,
            "The state of every box, after each connect; tells the server the device is subscribed.",
        ),
        Channel::Acks => (
            "CommandAck",
            true,
            1,
            false,
            "The fast acknowledgement of a command (the durable one is a command_result event).",
        ),
        Channel::Health => (
            "Heartbeat",
            true,
            1,
            false,
            "The heartbeat: lock bus, power, outbox backlog, station peripherals, clock offset.",
        ),
        Channel::Presence => (
            "Presence",
            true,
            1,
            true,
            "online after each CONNACK; the same topic is the device's last will (offline).",
        ),
        Channel::Csr => (
            "CertRequest",
            true,
            1,
            false,
            "A certificate signing request before the device's certificate expires.",
        ),
        Channel::Commands => (
            "Command",
            false,
            1,
            false,
            "Remote commands (open a box), re-sent until acknowledged or expired.",
        ),
        Channel::Receipts => (
            "Receipt",
            false,
            1,
            false,
            "Stored up to seq N: the device may delete its events up to N.",
        ),
        Channel::Codes => (
            "CodeSync",
            false,
            1,
            false,
            "The full set of code grants and staff credentials the cabinet verifies offline.",
        ),
        Channel::Cert => (
            "CertReply",
            false,
            1,
            false,
            "The renewed certificate, or why none was issued.",
        ),
        Channel::Update => (
            "Update",
            false,
            1,
            false,
            "Agent releases: an offer to fetch and stage one, and the chunks the device asked for.",
        ),
        Channel::Fetch => (
            "FetchRequest",
            true,
            1,
            false,
            "Asks for the next chunk of an offered release (one at a time; resumes after a restart).",
        ),
        Channel::Config => (
            "ConfigSync",
            false,
            1,
            false,
            "The settings the server wants the device to run with (central configuration, every layer merged; latest version wins).",
        ),
        Channel::Diagnose => (
            "DiagnosticsRequest",
            false,
            1,
            false,
            "Asks for the newest lines of the agent's log ring or a fresh doctor report; re-sent until answered or expired.",
        ),
        Channel::Diagnostics => (
            "DiagnosticsReport",
            true,
            1,
            false,
            "The answer to a diagnostics request: log lines (bounded), doctor checks, or why not.",
        ),
    };
    Use {
        message,
        device_sends,
        qos,
        retain,
        summary,
    }
}

/// The name of the message (its schema in [`SCHEMAS`]) that travels on a channel.
pub fn message_of(c: Channel) -> &'static str {
    channel_use(c).message
}

/// Lower camel case of a channel for operation names (`sendEvents`, `receiveCodes`).
fn title(c: Channel) -> String {
    let s = c.as_str();
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// The JSON Schemas of every message, keyed by type name, with `$ref`s into [`SCHEMAS`].
/// Draft-07 keywords, which AsyncAPI's default schema format accepts.
pub fn message_schemas() -> Map<String, Value> {
    let mut generator: SchemaGenerator = SchemaSettings::draft07()
        .with(|s| {
            s.definitions_path = SCHEMAS.into();
            // The document states the schema format once; no `$schema` per message.
            s.meta_schema = None;
        })
        .into_generator();
    fn add<T: JsonSchema>(g: &mut SchemaGenerator) {
        g.subschema_for::<T>();
    }
    add::<EventBatch>(&mut generator);
    add::<StateSnapshot>(&mut generator);
    add::<CommandAck>(&mut generator);
    add::<Heartbeat>(&mut generator);
    add::<Presence>(&mut generator);
    add::<CertRequest>(&mut generator);
    add::<Command>(&mut generator);
    add::<Receipt>(&mut generator);
    add::<CodeSync>(&mut generator);
    add::<CertReply>(&mut generator);
    add::<FetchRequest>(&mut generator);
    add::<Update>(&mut generator);
    add::<ConfigSync>(&mut generator);
    add::<DiagnosticsRequest>(&mut generator);
    add::<DiagnosticsReport>(&mut generator);
    let mut defs = generator.take_definitions(true);
    defs.sort_keys();
    defs
}

/// The AsyncAPI 3.0 document of the device protocol, from the device's point of view (what
/// it sends, what it receives).
pub fn asyncapi() -> Value {
    let schemas = message_schemas();
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for c in Channel::ALL {
        let u = channel_use(c);
        let name = c.as_str();
        channels.insert(
            name.into(),
            json!({
                "address": topic::acl_pattern("{deviceId}", c),
                "summary": u.summary,
                "parameters": { "deviceId": { "$ref": "#/components/parameters/deviceId" } },
                "messages": { u.message: { "$ref": format!("#/components/messages/{}", u.message) } },
            }),
        );
        let action = if u.device_sends { "send" } else { "receive" };
        let mut mqtt = json!({ "qos": u.qos, "bindingVersion": "0.2.0" });
        if u.device_sends {
            mqtt["retain"] = json!(u.retain);
        }
        operations.insert(
            format!("{action}{}", title(c)),
            json!({
                "action": action,
                "channel": { "$ref": format!("#/channels/{name}") },
                "messages": [ { "$ref": format!("#/channels/{name}/messages/{}", u.message) } ],
                "bindings": { "mqtt": mqtt },
            }),
        );
        let description = schemas
            .get(u.message)
            .and_then(|s| s.get("description"))
            .cloned()
            .unwrap_or(Value::Null);
        let mut message = json!({
            "name": u.message,
            "contentType": "application/json",
            "payload": { "$ref": format!("#{SCHEMAS}/{}", u.message) },
        });
        if !description.is_null() {
            message["description"] = description;
        }
        messages.insert(u.message.into(), message);
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "LockerFleet device protocol",
            "version": format!("{PROTOCOL_VERSION}.0.0"),
            "description": format!(
                "What a cabinet or station device and the fleet server say to each other over MQTT \
                 3.1.1 with mutual TLS. Generated from the `protocol` crate; PROTOCOL.md explains \
                 the rules a schema cannot express (sequence numbers and receipts, at most \
                 {MAX_EVENTS_PER_BATCH} events per batch, resend timing, code verification). \
                 Every payload carries `v`: {PROTOCOL_VERSION}; unknown extra fields are ignored."
            ),
            "license": { "name": "Apache-2.0" },
        },
        "defaultContentType": "application/json",
        "servers": {
            "fleet": {
                "host": "{host}:{port}",
                "protocol": "secure-mqtt",
                "protocolVersion": "3.1.1",
                "description": "The fleet server's device port. The client id must equal the \
                    device id, which is the common name of the client certificate.",
                "variables": {
                    "host": { "description": "The fleet server or external broker." },
                    "port": { "default": "8883" },
                },
                "security": [ { "$ref": "#/components/securitySchemes/deviceCertificate" } ],
                "bindings": {
                    "mqtt": {
                        "cleanSession": true,
                        "lastWill": {
                            "topic": topic::acl_pattern("{deviceId}", Channel::Presence),
                            "qos": 1,
                            "retain": true,
                        },
                        "bindingVersion": "0.2.0",
                    },
                },
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "parameters": {
                "deviceId": {
                    "description": "The device id: 1 to 64 ASCII letters, digits, '-' or '_', \
                        starting with a letter or digit. A device may use only its own.",
                },
            },
            "securitySchemes": {
                "deviceCertificate": {
                    "type": "X509",
                    "description": "A client certificate signed by the fleet CA (`fleet-certs \
                        issue`), common name = device id.",
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_channel_has_its_message_schema_and_operation() {
        let doc = asyncapi();
        for c in Channel::ALL {
            let u = channel_use(c);
            assert!(
                doc["components"]["schemas"][u.message].is_object(),
                "{}",
                u.message
            );
            assert_eq!(
                u.device_sends,
                c.device_publishes(),
                "{c:?}: the contract's direction must be the broker front's"
            );
            let op = if u.device_sends { "send" } else { "receive" };
            assert_eq!(doc["operations"][format!("{op}{}", title(c))]["action"], op);
        }
    }
}
