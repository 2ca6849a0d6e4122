//! An invoker among others (`gust invoker`): it announces its health and free capacity on a
//! heartbeat, and it adopts the queue of an invoker it stops hearing from.
//!
//! Adoption: every invoker knows the live invokers (their heartbeats) and the invokers that
//! have a queue on the bus. A queue whose invoker is silent is taken over by the live invoker
//! that ranks highest for it (rendezvous hashing, so all agree without talking): what the
//! dead one held unacknowledged is delivered again at once, marked as a redelivery, so a
//! record that already exists is not made twice. When the owner is heard again, the adopter
//! hands the queue back (its buffered deliveries go back with a nak). An invoker that is
//! leaving (draining on SIGTERM) goes on sending heartbeats marked `leaving` until its process
//! ends: controllers route nothing more to it, and no invoker adopts its queue while it may
//! still finish work from it.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gust_bus::{HEALTH_SUBJECT, invoke_subject, pump};
use gust_model::InvokerHealth;
use gust_model::message::{HEARTBEAT_INTERVAL_MS, INVOKER_TIMEOUT_MS};
use tokio::sync::watch;

use crate::Invoker;

/// How many heartbeat intervals pass between two listings of the bus's queues.
const QUEUE_LISTING_EVERY: u32 = 5;

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The live invoker that adopts `orphan`'s queue, among `live`.
fn adopter<'a>(orphan: &str, live: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    live.max_by_key(|id| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (orphan, id.as_str()).hash(&mut h);
        h.finish()
    })
}

impl Invoker {
    fn health(&self, leaving: bool) -> InvokerHealth {
        InvokerHealth {
            invoker: self.id.clone(),
            capacity: self.capacity,
            busy: self.inflight.load(Ordering::SeqCst) as u64,
            leaving,
        }
    }

    pub(crate) async fn announce(&self, leaving: bool) {
        match serde_json::to_vec(&self.health(leaving)) {
            Ok(bytes) => {
                if let Err(e) = self.bus.publish(HEALTH_SUBJECT, Bytes::from(bytes)).await {
                    tracing::warn!(error = %e, "cannot send a heartbeat");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode a heartbeat"),
        }
    }

    /// Joins the cluster: heartbeats start, and queues of silent invokers are adopted. Call
    /// before [`Invoker::start`], so controllers hear of it as soon as it takes work. From
    /// [`Invoker::drain`] on, its heartbeats say it is leaving (controllers send it nothing
    /// more) but go on until the process ends, so no other invoker takes its queue over
    /// while it finishes what it runs; then it falls silent and its queue is adopted.
    pub async fn join_cluster(self: &Arc<Self>) -> Result<(), crate::InvokerError> {
        let mut heard = self.bus.subscribe(HEALTH_SUBJECT).await?;
        self.joined.store(true, Ordering::SeqCst);
        self.announce(false).await;
        let this = self.clone();
        tokio::spawn(async move {
            let mut stop = this.stop.subscribe();
            let mut every = tokio::time::interval(Duration::from_millis(HEARTBEAT_INTERVAL_MS));
            let mut live: HashMap<String, Instant> = HashMap::new();
            let mut queues: Vec<String> = Vec::new();
            let mut adopted: HashMap<String, (watch::Sender<bool>, tokio::task::JoinHandle<()>)> =
                HashMap::new();
            let mut ticks = 0u32;
            // Until it has listened as long as a live invoker may stay silent, it cannot tell
            // who is silent.
            let listening_since = Instant::now();
            let timeout = Duration::from_millis(INVOKER_TIMEOUT_MS);
            let mut leaving = false;
            loop {
                tokio::select! {
                    _ = stopped(&mut stop), if !leaving => {
                        // Adopted queues go back (their buffers handed back); heartbeats go on.
                        leaving = true;
                        for (_, (stop, _)) in adopted.drain() {
                            let _ = stop.send(true);
                        }
                    }
                    delivery = heard.next() => {
                        let Some(delivery) = delivery else { break };
                        match serde_json::from_slice::<InvokerHealth>(&delivery.payload) {
                            // A leaving invoker is still alive: its queue is not adopted
                            // until it falls silent.
                            Ok(h) => { live.insert(h.invoker, Instant::now()); }
                            Err(e) => tracing::warn!(error = %e, "undecodable heartbeat"),
                        }
                    }
                    _ = every.tick() => {
                        leaving |= *this.stop.borrow();
                        this.announce(leaving).await;
                        if leaving {
                            continue;
                        }
                        if ticks.is_multiple_of(QUEUE_LISTING_EVERY) {
                            match this.bus.invoker_queues().await {
                                Ok(q) => queues = q,
                                Err(e) => tracing::warn!(error = %e, "cannot list the invokers' queues"),
                            }
                        }
                        ticks = ticks.wrapping_add(1);
                        live.retain(|_, seen| seen.elapsed() < timeout);
                        live.insert(this.id.clone(), Instant::now());
                        if listening_since.elapsed() >= timeout {
                            this.adopt(&live, &queues, &mut adopted).await;
                        }
                    }
                }
            }
        });
        Ok(())
    }

    /// Starts adopting the silent invokers' queues that fall to this one, and hands back
    /// the adopted queues whose owner is heard again.
    async fn adopt(
        self: &Arc<Self>,
        live: &HashMap<String, Instant>,
        queues: &[String],
        adopted: &mut HashMap<String, (watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
    ) {
        let mine: HashSet<&String> = queues
            .iter()
            .filter(|q| !live.contains_key(*q))
            .filter(|q| adopter(q, live.keys()) == Some(&self.id))
            .collect();
        adopted.retain(|owner, (stop, task)| {
            let keep = mine.contains(owner) && !task.is_finished();
            if !keep {
                let _ = stop.send(true);
            }
            keep
        });
        for owner in mine {
            if adopted.contains_key(owner) {
                continue;
            }
            let sub = match self.bus.take_over(&invoke_subject(owner)).await {
                Ok(sub) => sub,
                Err(e) => {
                    tracing::warn!(owner, error = %e, "cannot adopt a silent invoker's queue");
                    continue;
                }
            };
            tracing::warn!(owner, "adopting the queue of a silent invoker");
            let (stop, mut stopped) = watch::channel(false);
            let handler = self.handler();
            let task = tokio::spawn(async move {
                pump(sub, &handler, &mut stopped).await;
            });
            adopted.insert(owner.clone(), (stop, task));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invoker_agrees_on_the_adopter() {
        let live: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let mut reversed = live.clone();
        reversed.reverse();
        for orphan in ["x", "y", "z", "w"] {
            assert_eq!(
                adopter(orphan, live.iter()),
                adopter(orphan, reversed.iter())
            );
        }
        assert_eq!(adopter("x", [].iter()), None);
    }
}
