//! `Operations.GetStatus` as people and scripts read it, defined once for
//! `sealctl get status` and `sealplane status`: the same fields, the same
//! names, the same layout.

use serde::Serialize;

use crate::v1;

/// The status of a control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusView {
    /// The control plane's version.
    pub version: String,
    /// The deployment id (empty on an empty log).
    pub deployment_id: String,
    /// `ready` or `not ready: REASON`.
    pub readiness: String,
    /// The event store backend.
    pub event_store: String,
    /// The log's head position.
    pub log_head: u64,
    /// The read model's position.
    pub read_model_position: u64,
    /// Whether the read model finished its start-up rebuild.
    pub read_model_caught_up: bool,
    /// Events the read model is behind the head.
    pub read_model_lag: u64,
    /// The latest signed checkpoint, or `none`.
    pub latest_checkpoint: String,
    /// Reactors subscribed now.
    pub reactors: Vec<ReactorView>,
}

/// One connected reactor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReactorView {
    /// Its principal.
    pub principal: String,
    /// The stores it serves.
    pub stores: Vec<String>,
    /// The last position sent on its feed.
    pub feed_position: u64,
    /// Events its feed is behind the head.
    pub lag: u64,
    /// When it subscribed.
    pub connected_since: String,
}

impl From<v1::StatusReply> for StatusView {
    fn from(r: v1::StatusReply) -> Self {
        let read = r.read_model.unwrap_or_default();
        StatusView {
            version: r.version,
            deployment_id: r.deployment_id,
            readiness: r.readiness,
            event_store: r.event_store_backend,
            log_head: r.log_head,
            read_model_position: read.position,
            read_model_caught_up: read.caught_up,
            read_model_lag: r.read_model_lag,
            latest_checkpoint: if r.latest_checkpoint.is_empty() {
                "none".into()
            } else {
                r.latest_checkpoint
            },
            reactors: r
                .reactors
                .into_iter()
                .map(|c| ReactorView {
                    principal: c.principal,
                    stores: c.stores,
                    feed_position: c.feed_position,
                    lag: c.lag,
                    connected_since: c.connected_since,
                })
                .collect(),
        }
    }
}

impl StatusView {
    /// `field  value` pairs, in the order people read them.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("version", self.version.clone()),
            ("deployment", or_none(&self.deployment_id)),
            ("readiness", self.readiness.clone()),
            (
                "event store",
                format!("{}, head {}", self.event_store, self.log_head),
            ),
            (
                "read model",
                format!(
                    "position {}, lag {} event(s){}",
                    self.read_model_position,
                    self.read_model_lag,
                    if self.read_model_caught_up {
                        ""
                    } else {
                        ", rebuilding"
                    }
                ),
            ),
            ("latest checkpoint", self.latest_checkpoint.clone()),
            ("reactors", format!("{} connected", self.reactors.len())),
        ];
        for r in &self.reactors {
            out.push((
                "  reactor",
                format!(
                    "{} (stores {}): position {}, lag {} event(s), since {}",
                    r.principal,
                    r.stores.join(", "),
                    r.feed_position,
                    r.lag,
                    r.connected_since
                ),
            ));
        }
        out
    }

    /// The human layout: aligned `field  value` lines.
    pub fn human(&self) -> String {
        let fields = self.fields();
        let width = fields.iter().map(|(f, _)| f.len()).max().unwrap_or(0);
        fields
            .iter()
            .map(|(f, v)| format!("{f:<width$}  {v}\n"))
            .collect()
    }
}

fn or_none(text: &str) -> String {
    if text.is_empty() {
        "none".into()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_reads_at_a_glance_with_the_checkpoint_none_until_wired() {
        let view = StatusView::from(v1::StatusReply {
            version: "0.1.0".into(),
            event_store_backend: "embedded".into(),
            log_head: 42,
            read_model: Some(v1::ReadPosition {
                position: 40,
                caught_up: true,
            }),
            read_model_lag: 2,
            readiness: "ready".into(),
            deployment_id: "6f1c".into(),
            latest_checkpoint: String::new(),
            reactors: vec![v1::ConnectedReactor {
                principal: "reactor-0".into(),
                stores: vec!["local".into()],
                feed_position: 42,
                lag: 0,
                connected_since: "2026-12-01T11:00:00Z".into(),
            }],
        });
        assert_eq!(
            view.human(),
            "version            0.1.0\n\
             deployment         6f1c\n\
             readiness          ready\n\
             event store        embedded, head 42\n\
             read model         position 40, lag 2 event(s)\n\
             latest checkpoint  none\n\
             reactors           1 connected\n  \
             reactor          reactor-0 (stores local): position 42, lag 0 event(s), since 2026-12-01T11:00:00Z\n"
        );
    }
}
