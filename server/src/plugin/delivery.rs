//! Delivery hooks (the `delivery` export), called by the queue's delivery workers on a set of
//! instances of their own for each attempt (a [`SessionPlugins`] named after the queue id).
//! Plugins run in order: the first whose route is not `default` decides the route, and every
//! plugin's copies are added. A failure under `open` skips the plugin; under `closed` the
//! recipient is deferred.

use super::bindings::delivery_types as d;
use super::session::{Call, Output, Reach, SessionPlugins};
use super::Hook;

pub use d::{Decision, MessageInfo, RecipientInfo, Route};

/// Copies all the route hooks of one recipient may ask for together.
const MAX_COPIES: usize = 100;

/// What the route hooks decided for one recipient.
pub enum RouteOutcome {
    /// The route (and which plugin chose it), and the copies asked for.
    Decided { route: Route, by: Option<String>, copies: Vec<String> },
    /// A plugin under `closed` failed: try again later.
    Deferred(String),
}

impl SessionPlugins {
    pub async fn on_route(&mut self, message: &MessageInfo, recipient: &RecipientInfo) -> RouteOutcome {
        let mut route = Route::Default;
        let mut by = None;
        let mut copies = Vec::new();
        for index in self.reached(Reach::Listed(Hook::Route)) {
            let room = MAX_COPIES - copies.len();
            let answer = self
                .ask(index, &Call::Route(message, recipient), |output| {
                    let Output::Decision(decision) = output else { unreachable!("route-recipient returns a decision") };
                    if decision.copies.len() > room {
                        return Err(format!("more than {MAX_COPIES} copies"));
                    }
                    Ok(decision)
                })
                .await;
            match answer {
                Ok(decision) => {
                    copies.extend(decision.copies);
                    if matches!(route, Route::Default) && !matches!(decision.route, Route::Default) {
                        route = decision.route;
                        by = Some(self.registry.plugins[index].name().to_string());
                    }
                }
                Err(Some(reply)) => {
                    return RouteOutcome::Deferred(format!("plugin {} failed: {reply}", self.registry.plugins[index].name()));
                }
                Err(None) => {}
            }
        }
        RouteOutcome::Decided { route, by, copies }
    }

    /// Tells the plugins that asked what became of a recipient in this attempt.
    pub async fn on_delivery_result(&mut self, message: &MessageInfo, recipient: &str, outcome: &str, detail: &str) {
        for index in self.reached(Reach::Listed(Hook::DeliveryResult)) {
            // Nothing to refuse after the fact; the log says what happened.
            let _ = self.ask(index, &Call::DeliveryResult(message, recipient, outcome, detail), |_| Ok(())).await;
        }
    }
}
