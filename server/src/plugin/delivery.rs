//! Delivery hooks (the `delivery` export), called by the queue's delivery workers on a set of
//! instances of their own for each attempt (a [`SessionPlugins`] named after the queue id).
//! Plugins run in order: the first whose route is not `default` decides the route, and every
//! plugin's copies are added. A failure under `open` skips the plugin; under `closed` the
//! recipient is deferred.

use super::bindings::delivery_types as d;
use super::session::{Call, Output, SessionPlugins};
use super::Hook;

pub use d::{Decision, MessageInfo, RecipientInfo, Route};

/// What the route hooks decided for one recipient.
pub enum RouteOutcome {
    /// The route (and which plugin chose it), and the copies asked for.
    Decided { route: Route, by: Option<String>, copies: Vec<String> },
    /// A plugin under `closed` failed: try again later.
    Deferred(String),
}

impl SessionPlugins {
    /// Whether any plugin has this delivery hook.
    pub fn wants_delivery(&self, hook: Hook) -> bool {
        self.registry.plugins.iter().any(|p| p.wants(hook) && !p.hooks_need_verb())
    }

    pub async fn on_route(&mut self, message: &MessageInfo, recipient: &RecipientInfo) -> RouteOutcome {
        let mut route = Route::Default;
        let mut by = None;
        let mut copies = Vec::new();
        for index in 0..self.registry.plugins.len() {
            let plugin = std::sync::Arc::clone(&self.registry.plugins[index]);
            if !plugin.wants(Hook::Route) || plugin.hooks_need_verb() {
                continue;
            }
            match self.call(index, &Call::Route(message, recipient)).await {
                Ok(Output::Decision(decision)) => {
                    if copies.len() + decision.copies.len() > 100 {
                        if let Some(reply) = self.failed(index, "route", &super::session::Failure::Invalid("more than 100 copies".into())) {
                            return RouteOutcome::Deferred(reply.to_string());
                        }
                        continue;
                    }
                    copies.extend(decision.copies);
                    if matches!(route, Route::Default) && !matches!(decision.route, Route::Default) {
                        route = decision.route;
                        by = Some(plugin.name().to_string());
                    }
                }
                Ok(_) => unreachable!("route-recipient returns a decision"),
                Err(failure) => {
                    if let Some(reply) = self.failed(index, "route", &failure) {
                        return RouteOutcome::Deferred(format!("plugin {} failed: {}", plugin.name(), reply));
                    }
                }
            }
        }
        RouteOutcome::Decided { route, by, copies }
    }

    /// Tells the plugins that asked what became of a recipient in this attempt.
    pub async fn on_delivery_result(&mut self, message: &MessageInfo, recipient: &str, outcome: &str, detail: &str) {
        for index in 0..self.registry.plugins.len() {
            let plugin = std::sync::Arc::clone(&self.registry.plugins[index]);
            if !plugin.wants(Hook::DeliveryResult) || plugin.hooks_need_verb() {
                continue;
            }
            if let Err(failure) = self.call(index, &Call::DeliveryResult(message, recipient, outcome, detail)).await {
                // Nothing to refuse after the fact; the log says what happened.
                let _ = self.failed(index, "delivery-result", &failure);
            }
        }
    }
}
