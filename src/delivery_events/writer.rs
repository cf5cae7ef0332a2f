//! Group commit for delivery events. Concurrent webhook requests hand their
//! parsed event to one writer task, which stores whatever has gathered in a
//! single transaction and then answers each request. Every request still gets
//! its 2xx only after its event is committed; a busy receiver simply commits
//! many events at a time instead of paying a transaction each.

use tokio::sync::{mpsc, oneshot};

use crate::domain::delivery_event::{EventOutcome, EventTarget, IncomingEvent};
use crate::store::Store;

/// Most events committed together.
const GROUP: usize = 256;

type Reply = oneshot::Sender<Result<EventOutcome, String>>;

#[derive(Clone)]
pub struct EventWriter {
    queue: mpsc::Sender<(IncomingEvent, Reply)>,
}

impl EventWriter {
    /// Starts the writer task; it ends when every `EventWriter` clone is dropped.
    pub fn spawn(store: Store) -> Self {
        let (queue, rx) = mpsc::channel(4 * GROUP);
        tokio::spawn(run(store, rx));
        Self { queue }
    }

    /// Stores and applies one event; resolves once it is committed.
    pub async fn write(&self, event: IncomingEvent) -> Result<EventOutcome, String> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((event, reply)).await.map_err(|_| "event writer stopped".to_owned())?;
        answer.await.map_err(|_| "event writer stopped".to_owned())?
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<(IncomingEvent, Reply)>) {
    let mut received = Vec::with_capacity(GROUP);
    while rx.recv_many(&mut received, GROUP).await > 0 {
        // The group's messages, in one read (not one round trip per request).
        let parsed: Vec<&IncomingEvent> = received.iter().map(|(e, _)| e).collect();
        let targets = match store.event_targets(&parsed).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "could not look up the messages of delivery events");
                for (_, reply) in received.drain(..) {
                    let _ = reply.send(Err(e.to_string()));
                }
                continue;
            }
        };
        let mut group: Vec<(IncomingEvent, Option<EventTarget>, Reply)> =
            received.drain(..).zip(targets).map(|((e, r), t)| (e, t, r)).collect();
        let events: Vec<(&IncomingEvent, Option<EventTarget>)> = group.iter().map(|(e, t, _)| (e, t.clone())).collect();
        let result = store.apply_events(&events).await;
        match result {
            Ok(outcomes) => {
                let judge = reputation_tenants(group.iter().map(|(e, t, _)| (e, t.as_ref())).zip(&outcomes));
                let replies: Vec<(Reply, EventOutcome)> = group.drain(..).map(|(_, _, r)| r).zip(outcomes).collect();
                if judge.is_empty() {
                    for (reply, outcome) in replies {
                        let _ = reply.send(Ok(outcome));
                    }
                } else {
                    // Beside the writer, so the next group is not kept waiting;
                    // the replies wait for it, so when the provider's request for
                    // a threshold-crossing event is answered, the pause holds.
                    let store = store.clone();
                    tokio::spawn(async move {
                        judge_reputation(&store, &judge).await;
                        for (reply, outcome) in replies {
                            let _ = reply.send(Ok(outcome));
                        }
                    });
                }
            }
            Err(e) if group.len() > 1 => {
                // One bad event must not fail the innocent ones stored with it:
                // store each alone, so only the failing one answers an error.
                tracing::warn!(error = %e, events = group.len(), "storing events together failed; storing each alone");
                for (event, target, reply) in group.drain(..) {
                    let tenant = target.as_ref().map(|t| t.tenant_id().to_owned());
                    let outcome = store.apply_events(&[(&event, target)]).await;
                    if let (Ok([EventOutcome::Applied { .. }]), Some(t), true) =
                        (outcome.as_deref(), &tenant, event.hurts_reputation())
                    {
                        judge_reputation(&store, std::slice::from_ref(t)).await;
                    }
                    let _ = reply.send(match outcome {
                        Ok(mut o) => o.pop().ok_or_else(|| "no outcome".to_owned()),
                        Err(e) => {
                            tracing::error!(error = %e, svix_id = %event.svix_id, "could not store a delivery event");
                            Err(e.to_string())
                        }
                    });
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "could not store a delivery event");
                for (_, _, reply) in group.drain(..) {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// The tenants whose newly applied events include a hard bounce or a
/// complaint: the only events that can raise a tenant's rates (sends and
/// deliveries lower them, and the worker's sweep sees them), so ingestion
/// pays for an evaluation only where one can matter.
fn reputation_tenants<'a>(
    events: impl Iterator<Item = ((&'a IncomingEvent, Option<&'a EventTarget>), &'a EventOutcome)>,
) -> Vec<String> {
    let mut tenants: Vec<String> = events
        .filter(|((e, _), o)| matches!(o, EventOutcome::Applied { .. }) && e.hurts_reputation())
        .filter_map(|((_, t), _)| t.map(|t| t.tenant_id().to_owned()))
        .collect();
    tenants.sort_unstable();
    tenants.dedup();
    tenants
}

/// Evaluates these tenants' reputation. A failure is logged, not returned: the
/// events are stored, and the sweep evaluates again.
async fn judge_reputation(store: &Store, tenants: &[String]) {
    let ids: Vec<&str> = tenants.iter().map(String::as_str).collect();
    if let Err(e) = store.evaluate_reputation(Some(&ids)).await {
        tracing::warn!(error = %e, "could not evaluate reputation after storing events; the sweep will");
    }
}
