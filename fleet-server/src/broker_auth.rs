//! `fleet-server broker-auth`: the decisions a RabbitMQ broker tier asks over its HTTP auth
//! backend (ADR 0024), so the broker itself enforces on every node what the embedded front
//! enforces: a device is the common name of its certificate, connects only with its own id as
//! MQTT client id, publishes only its own uplink topics and reads only its own downlink
//! topics; the server replicas (common name `fleet-server`) consume and publish device
//! traffic through the `lockerfleet.` exchanges and queues.
//!
//! The service is stateless (every answer follows from the request), so one runs beside each
//! broker node and none of them depends on the database or on a server replica.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{Path, Query};
use axum::routing::get;
use protocol::{Channel, DeviceId};

/// Names of the exchanges and queues the replicas declare: all of them start with this.
pub(crate) const RESOURCE_PREFIX: &str = "lockerfleet.";

/// The exchange RabbitMQ's MQTT plugin publishes device messages to.
pub(crate) const MQTT_EXCHANGE: &str = "amq.topic";

/// Who is asking: a device or a server replica, from the certificate's common name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    Device(DeviceId),
    Replica,
}

fn who(username: Option<&String>) -> Option<Who> {
    let name = username?;
    if name == certs::SERVER_CLIENT {
        return Some(Who::Replica);
    }
    DeviceId::parse(name).ok().map(Who::Device)
}

/// One answer: `allow` or `deny`, with why for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub allow: bool,
    pub why: String,
}

fn allow() -> Decision {
    Decision {
        allow: true,
        why: String::new(),
    }
}

fn deny(why: impl Into<String>) -> Decision {
    Decision {
        allow: false,
        why: why.into(),
    }
}

/// The answer to one of the backend's four questions (`user`, `vhost`, `resource`, `topic`),
/// asked with the query parameters RabbitMQ 3.10 sends.
pub(crate) fn decide(question: &str, q: &HashMap<String, String>) -> Decision {
    let Some(who) = who(q.get("username")) else {
        return deny(format!(
            "{:?} is neither a device id nor {}",
            q.get("username").map(String::as_str).unwrap_or(""),
            certs::SERVER_CLIENT
        ));
    };
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    match question {
        // Certificate login: the TLS handshake already proved the name; there is no password.
        "user" => allow(),
        "vhost" => {
            if get("vhost") != "/" {
                return deny(format!("vhost {:?}: only / is used", get("vhost")));
            }
            match (&who, q.get("client_id")) {
                // The MQTT client id is the device's own id, or a device could take over
                // another's session (RabbitMQ keeps one connection per client id).
                (Who::Device(id), Some(client)) if client != id.as_str() => deny(format!(
                    "device {id} connected with client id {client:?}: it must be its own id"
                )),
                (Who::Device(id), None) => deny(format!(
                    "device {id} may only connect over MQTT (no client id given)"
                )),
                _ => allow(),
            }
        }
        "resource" => resource(&who, get("resource"), get("name"), get("permission")),
        "topic" => topic(&who, get("name"), get("permission"), get("routing_key")),
        other => deny(format!("unknown question {other:?}")),
    }
}

fn resource(who: &Who, kind: &str, name: &str, permission: &str) -> Decision {
    match who {
        Who::Device(id) => {
            let own_queue = [0, 1]
                .iter()
                .any(|qos| name == format!("mqtt-subscription-{id}qos{qos}"));
            match (kind, name) {
                // Publishing to and subscribing through the MQTT exchange; which routing
                // keys, the topic question decides.
                ("exchange", MQTT_EXCHANGE) if permission != "configure" => allow(),
                ("queue", _) if own_queue => allow(),
                _ => deny(format!(
                    "device {id} may not {permission} {kind} {name:?}: only amq.topic and its own subscription queue"
                )),
            }
        }
        Who::Replica => match (kind, name) {
            ("exchange", MQTT_EXCHANGE) if permission != "configure" => allow(),
            (_, n) if n.starts_with(RESOURCE_PREFIX) => allow(),
            _ => deny(format!(
                "the replicas may not {permission} {kind} {name:?}: only amq.topic and {RESOURCE_PREFIX}*"
            )),
        },
    }
}

fn topic(who: &Who, exchange: &str, permission: &str, key: &str) -> Decision {
    if exchange != MQTT_EXCHANGE {
        // Our own exchanges are reached only from amq.topic, whose keys were checked there.
        return match who {
            Who::Replica if exchange.starts_with(RESOURCE_PREFIX) => allow(),
            _ => deny(format!("topic access to exchange {exchange:?}")),
        };
    }
    let topic = protocol::topic::topic_of_routing_key(key);
    match (who, permission) {
        (Who::Device(id), "write") => match protocol::topic::check_device_publish(id, &topic) {
            Ok(_) => allow(),
            Err(e) => deny(e.to_string()),
        },
        (Who::Device(id), "read") => match protocol::topic::check_device_subscribe(id, &topic) {
            Ok(_) => allow(),
            Err(e) => deny(e.to_string()),
        },
        // A replica sends devices only their downlink channels, one device at a time.
        (Who::Replica, "write") => match protocol::topic::DeviceTopic::parse(&topic) {
            Ok(t) if Channel::DEVICE_DOWNLINK.contains(&t.channel) => allow(),
            _ => deny(format!(
                "the replicas publish only a device's downlink topics, not {topic:?}"
            )),
        },
        // A replica binds every device's uplink channels (`devices.*.events`) to its queues.
        (Who::Replica, "read") => {
            let uplink = Channel::ALL
                .into_iter()
                .filter(|c| c.device_publishes())
                .any(|c| topic == protocol::topic::all_devices_filter(c));
            if uplink {
                allow()
            } else {
                deny(format!(
                    "the replicas read only every device's uplink channels, not {topic:?}"
                ))
            }
        }
        (_, other) => deny(format!("unknown permission {other:?}")),
    }
}

/// Serves the four questions on `listen` until `cancel`; prints `LOCKERFLEET_READY auth=ADDR`.
pub async fn serve(
    listen: SocketAddr,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let app = axum::Router::new().route(
        "/broker-auth/:question",
        get(
            |Path(question): Path<String>, Query(q): Query<HashMap<String, String>>| async move {
                let d = decide(&question, &q);
                if !d.allow {
                    tracing::warn!(%question, user = q.get("username").map(String::as_str).unwrap_or(""), why = %d.why, "broker-auth: denied");
                }
                if d.allow { "allow" } else { "deny" }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("broker-auth cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    println!("LOCKERFLEET_READY auth={addr}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
        .context("broker-auth stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(question: &str, pairs: &[(&str, &str)]) -> bool {
        let q = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        decide(question, &q).allow
    }

    #[test]
    fn a_device_connects_only_as_itself() {
        assert!(ask("user", &[("username", "cab-1")]));
        assert!(ask(
            "vhost",
            &[
                ("username", "cab-1"),
                ("vhost", "/"),
                ("client_id", "cab-1")
            ]
        ));
        assert!(!ask(
            "vhost",
            &[
                ("username", "cab-1"),
                ("vhost", "/"),
                ("client_id", "cab-2")
            ]
        ));
        // AMQP gives no client id: devices have no business there.
        assert!(!ask("vhost", &[("username", "cab-1"), ("vhost", "/")]));
        assert!(!ask(
            "vhost",
            &[
                ("username", "cab-1"),
                ("vhost", "x"),
                ("client_id", "cab-1")
            ]
        ));
        assert!(!ask("user", &[("username", "bad name")]));
        assert!(!ask("user", &[]));
    }

    #[test]
    fn a_device_reaches_only_its_own_topics() {
        let t = |perm: &str, key: &str| {
            ask(
                "topic",
                &[
                    ("username", "cab-1"),
                    ("resource", "topic"),
                    ("name", "amq.topic"),
                    ("permission", perm),
                    ("routing_key", key),
                ],
            )
        };
        assert!(t("write", "devices.cab-1.events"));
        assert!(t("write", "devices.cab-1.presence"));
        assert!(t("read", "devices.cab-1.commands"));
        assert!(t("read", "devices.cab-1.codes"));
        for key in [
            "devices.cab-2.events",
            "devices.cab-1.commands",
            "devices.cab-1x.events",
            "devices.*.events",
            "devices.cab-1.#",
            "devices.cab-1.x.events",
            "#",
        ] {
            assert!(!t("write", key), "write {key}");
        }
        for key in [
            "devices.cab-2.commands",
            "devices.cab-1.events",
            "devices.*.commands",
            "devices.cab-1.#",
            "#",
        ] {
            assert!(!t("read", key), "read {key}");
        }
    }

    #[test]
    fn a_device_uses_only_amq_topic_and_its_own_queue() {
        let r = |kind: &str, name: &str, perm: &str| {
            ask(
                "resource",
                &[
                    ("username", "cab-1"),
                    ("resource", kind),
                    ("name", name),
                    ("permission", perm),
                ],
            )
        };
        assert!(r("exchange", "amq.topic", "write"));
        assert!(r("exchange", "amq.topic", "read"));
        assert!(!r("exchange", "amq.topic", "configure"));
        assert!(r("queue", "mqtt-subscription-cab-1qos1", "configure"));
        assert!(r("queue", "mqtt-subscription-cab-1qos0", "read"));
        assert!(!r("queue", "mqtt-subscription-cab-2qos1", "read"));
        assert!(!r("queue", "lockerfleet.p0", "read"));
        assert!(!r("exchange", "lockerfleet.uplink", "write"));
    }

    #[test]
    fn the_replicas_read_uplinks_and_write_downlinks() {
        let t = |perm: &str, key: &str| {
            ask(
                "topic",
                &[
                    ("username", "fleet-server"),
                    ("name", "amq.topic"),
                    ("permission", perm),
                    ("routing_key", key),
                ],
            )
        };
        assert!(t("read", "devices.*.events"));
        assert!(t("read", "devices.*.presence"));
        assert!(!t("read", "devices.*.commands"));
        assert!(!t("read", "#"));
        assert!(t("write", "devices.cab-1.commands"));
        assert!(t("write", "devices.cab-1.codes"));
        assert!(!t("write", "devices.cab-1.events"));
        assert!(!t("write", "devices.*.commands"));
        let r = |kind: &str, name: &str, perm: &str| {
            ask(
                "resource",
                &[
                    ("username", "fleet-server"),
                    ("resource", kind),
                    ("name", name),
                    ("permission", perm),
                ],
            )
        };
        assert!(r("queue", "lockerfleet.p3", "configure"));
        assert!(r("exchange", "lockerfleet.uplink", "configure"));
        assert!(!r("exchange", "amq.topic", "configure"));
        assert!(!r("queue", "mqtt-subscription-cab-1qos1", "read"));
    }
}
