//! The reactor's readiness, answered on its admin listener (`/readyz`):
//! ready only when it is subscribed to the control plane's feed, has caught
//! up on it, and every upstream store it serves answered its last probe
//! ([`UpstreamStore::probe`](crate::upstream::UpstreamStore::probe)), and
//! it is not stopping. The rule is [`judge`]; the feed loop reports
//! [`FeedState`], a task probes the stores every [`PROBE_EVERY`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sealplane_host::admin::Readiness;
use tokio::sync::watch;

use crate::upstream::UpstreamStore;

/// How often the stores are probed and readiness recomputed.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);

/// How long one store's probe may take before it counts as unreachable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the feed loop is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedState {
    /// Subscribed to the control plane's feed.
    pub connected: bool,
    /// The feed's backlog has been received (`CaughtUp`) on this subscription.
    pub caught_up: bool,
    /// The reactor is stopping.
    pub stopping: bool,
    /// Another instance of this reactor holds the feed; this one waits to
    /// take over (ADR 0021).
    pub standby: bool,
}

/// The readiness of a reactor whose feed is at `feed` and whose stores'
/// last probes gave `stores` (store name → error sentence); the first
/// reason that applies wins.
pub fn judge(feed: &FeedState, stores: &BTreeMap<String, Result<(), String>>) -> Readiness {
    if feed.stopping {
        return Readiness::NotReady("stopping".into());
    }
    if feed.standby {
        return Readiness::NotReady(
            "standby: another instance of this reactor holds the feed".into(),
        );
    }
    if !feed.connected {
        return Readiness::NotReady("not connected to the control plane's feed".into());
    }
    if !feed.caught_up {
        return Readiness::NotReady("catching up on the control plane's feed".into());
    }
    let down: Vec<String> = stores
        .iter()
        .filter_map(|(name, probe)| probe.as_ref().err().map(|why| format!("`{name}`: {why}")))
        .collect();
    if !down.is_empty() {
        return Readiness::NotReady(format!("store unreachable: {}", down.join("; ")));
    }
    Readiness::Ready
}

/// Probes every store (each within [`PROBE_TIMEOUT`]).
pub async fn probe_all(
    stores: &BTreeMap<String, Arc<dyn UpstreamStore>>,
) -> BTreeMap<String, Result<(), String>> {
    let mut out = BTreeMap::new();
    for (name, store) in stores {
        let result = match tokio::time::timeout(PROBE_TIMEOUT, store.probe()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
        };
        out.insert(name.clone(), result);
    }
    out
}

/// Keeps `ready` current from the feed state and store probes until the
/// feed state says stopping (then publishes that and returns).
pub async fn monitor(
    stores: BTreeMap<String, Arc<dyn UpstreamStore>>,
    mut feed: watch::Receiver<FeedState>,
    ready: watch::Sender<Readiness>,
) {
    let mut probed = BTreeMap::new();
    let mut next_probe = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_probe {
            probed = probe_all(&stores).await;
            next_probe = tokio::time::Instant::now() + PROBE_EVERY;
        }
        let state = *feed.borrow_and_update();
        let now = judge(&state, &probed);
        ready.send_if_modified(|old| {
            if *old == now {
                return false;
            }
            match &now {
                Readiness::Ready => tracing::info!("ready"),
                Readiness::NotReady(why) => tracing::info!(reason = %why, "not ready"),
            }
            *old = now.clone();
            true
        });
        if state.stopping {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep_until(next_probe) => {},
            changed = feed.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: FeedState = FeedState {
        connected: true,
        caught_up: true,
        stopping: false,
        standby: false,
    };

    fn stores(results: &[(&str, Result<(), &str>)]) -> BTreeMap<String, Result<(), String>> {
        results
            .iter()
            .map(|(n, r)| (n.to_string(), r.map_err(str::to_owned)))
            .collect()
    }

    fn reason(r: Readiness) -> String {
        match r {
            Readiness::NotReady(why) => why,
            Readiness::Ready => panic!("expected not ready"),
        }
    }

    #[test]
    fn ready_when_caught_up_and_every_store_answers() {
        let all_up = stores(&[("local", Ok(())), ("vault", Ok(()))]);
        assert_eq!(judge(&LIVE, &all_up), Readiness::Ready);
    }

    #[test]
    fn not_ready_until_connected_and_caught_up() {
        let up = stores(&[("local", Ok(()))]);
        assert!(reason(judge(&FeedState::default(), &up)).contains("not connected"));
        let connecting = FeedState {
            caught_up: false,
            ..LIVE
        };
        assert!(reason(judge(&connecting, &up)).contains("catching up"));
    }

    #[test]
    fn a_standby_says_so() {
        let up = stores(&[("local", Ok(()))]);
        let standby = FeedState {
            connected: false,
            caught_up: false,
            standby: true,
            ..LIVE
        };
        assert!(reason(judge(&standby, &up)).starts_with("standby"));
    }

    #[test]
    fn an_unreachable_store_is_named() {
        let one_down = stores(&[("local", Ok(())), ("vault", Err("connection refused"))]);
        assert_eq!(
            reason(judge(&LIVE, &one_down)),
            "store unreachable: `vault`: connection refused"
        );
    }

    #[test]
    fn stopping_wins() {
        let stopping = FeedState {
            stopping: true,
            ..LIVE
        };
        assert_eq!(reason(judge(&stopping, &BTreeMap::new())), "stopping");
    }
}
