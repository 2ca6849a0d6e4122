//! Receiving webhooks: a request to a trigger's hook URL is checked by the trigger's webhook
//! source (its signature, its replay window) and fired with the delivery's identity, so a
//! delivery sent again fires nothing new. Nothing is fired for a request the source refuses;
//! a throttled namespace answers 429 (a rule's invocation refused for it too), for the
//! sender to send the delivery again.

use gust_controller::ControllerError;
use gust_model::TraceParent;
use gust_source::{Hook, HookError, HookRequest};

use crate::fire::EventFire;
use crate::sources::{keyed, open_config};
use crate::{EventError, Events, Fired};

/// What a webhook request did.
#[derive(Debug)]
pub enum Hooked {
    /// The trigger was fired (or the delivery had been).
    Fired(Fired),
    /// A handshake, answered with this body; nothing was fired.
    Reply {
        content_type: &'static str,
        body: String,
    },
}

impl Events {
    /// Receives `request` at the hook URL of trigger `ns/trigger`.
    pub async fn hook(
        &self,
        ns: &str,
        trigger: &str,
        request: HookRequest,
    ) -> Result<Hooked, EventError> {
        let sub = self
            .store
            .subscription(ns, trigger)
            .await?
            .filter(|s| !s.spec.listens)
            .ok_or(EventError::NoHook)?;
        let source = self
            .sources
            .get(&sub.spec.source)
            .ok_or(EventError::NoHook)?;
        if sub.spec.paused {
            return Err(EventError::HookRefused(
                "the trigger's webhook is paused".into(),
            ));
        }
        // Its secrets opened here, to check the request, and nowhere else.
        let config = open_config(
            self.core.keyring(),
            source.as_ref(),
            ns,
            trigger,
            &sub.spec.config,
        )
        .map_err(ControllerError::Internal)?;
        let event = match source.receive(&sub.spec.feed, &config, &request) {
            Ok(Hook::Fire(event)) => event,
            Ok(Hook::Reply { content_type, body }) => {
                return Ok(Hooked::Reply { content_type, body });
            }
            Err(HookError::Unauthorized(why)) => {
                tracing::info!(namespace = ns, trigger, %why, "a webhook request was refused");
                return Err(EventError::HookUnauthorized(why));
            }
            Err(HookError::BadRequest(why)) => return Err(EventError::HookRefused(why)),
        };
        let (payload, key) = keyed(event);
        let event = EventFire {
            payload,
            key: &key,
            count: true,
            trace: TraceParent::from_header(request.header("traceparent")),
        };
        let fired = self.fire_event(ns, trigger, event).await?;
        Ok(Hooked::Fired(fired))
    }
}
