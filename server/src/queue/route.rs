//! Where mail for a remote domain goes: a `[routes]` entry for the domain, else the smarthost
//! `"*"`, else the domain's MX records (RFC 5321 5.1: by preference; with no MX, the domain's
//! own address; a null MX, RFC 7505, means the domain takes no mail).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use std::sync::Arc;

use hickory_resolver::proto::rr::RData;
use wasmail_proto::smtp::{codes, EnhancedCode};

/// Why there is no next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// Try later (DNS trouble, no address yet).
    Temporary(String),
    /// The domain does not exist or takes no mail: bounce (with this RFC 3463 status).
    Permanent { status: EnhancedCode, text: String },
}

/// A next hop: the name (for logs and the DSN) and its addresses, in order.
#[derive(Debug, Clone)]
pub struct Hop {
    pub name: String,
    pub addrs: Vec<SocketAddr>,
}

pub struct Router {
    /// `[routes]`: domain (lower case) or `*` to `host:port`.
    routes: BTreeMap<String, String>,
    /// The process's resolver.
    dns: Arc<crate::dns::Dns>,
    /// The port of mail exchangers (25).
    mx_port: u16,
}

impl Router {
    pub fn new(routes: &BTreeMap<String, String>, dns: Arc<crate::dns::Dns>, mx_port: u16) -> Router {
        let routes = routes.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect();
        Router { routes, dns, mx_port }
    }

    /// Whether `[routes]` decides the next hop for `domain` (its own entry or `*`), rather
    /// than its MX records.
    pub fn routed(&self, domain: &str) -> bool {
        self.routes.contains_key(&domain.to_ascii_lowercase()) || self.routes.contains_key("*")
    }

    /// The hop a delivery hook named (`host:port`).
    pub async fn via(&self, route: &str) -> Result<Vec<Hop>, NoRoute> {
        Ok(vec![resolve_route(route).await?])
    }

    /// The hops for `domain`, in the order to try them.
    pub async fn hops(&self, domain: &str) -> Result<Vec<Hop>, NoRoute> {
        let domain = domain.to_ascii_lowercase();
        if let Some(route) = self.routes.get(&domain).or_else(|| self.routes.get("*")) {
            return Ok(vec![resolve_route(route).await?]);
        }
        let resolver = self.dns.resolver().map_err(|e| NoRoute::Temporary(e.to_string()))?;
        let names = match resolver.mx_lookup(format!("{domain}.")).await {
            Ok(mx) => {
                let mut records: Vec<(u16, String)> = mx
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((mx.preference, mx.exchange.to_utf8().trim_end_matches('.').to_string())),
                        _ => None,
                    })
                    .collect();
                records.sort();
                if records.len() == 1 && records[0].1.is_empty() {
                    return Err(NoRoute::Permanent { status: codes::NULL_MX, text: format!("{domain} accepts no mail (null MX, RFC 7505)") });
                }
                records.into_iter().map(|(_, name)| name).collect()
            }
            Err(e) if e.is_nx_domain() => {
                return Err(NoRoute::Permanent { status: codes::BAD_DEST_SYSTEM, text: format!("{domain}: no such domain") });
            }
            // RFC 5321 5.1: no MX records, so the domain itself is the host.
            Err(e) if e.is_no_records_found() => vec![domain.clone()],
            Err(e) => return Err(NoRoute::Temporary(format!("MX lookup for {domain}: {e}"))),
        };
        let mut hops = Vec::new();
        for name in names {
            match resolver.lookup_ip(format!("{name}.")).await {
                Ok(ips) => hops.push(Hop { name: name.clone(), addrs: ips.iter().map(|ip| SocketAddr::new(ip, self.mx_port)).collect() }),
                Err(e) => tracing::info!(host = name, error = %e, "cannot resolve a mail exchanger"),
            }
        }
        if hops.is_empty() {
            return Err(NoRoute::Temporary(format!("no address for the mail exchangers of {domain}")));
        }
        Ok(hops)
    }
}

/// `host:port` (or `host`, port 25; `[address]:port` for IPv6) to addresses.
async fn resolve_route(route: &str) -> Result<Hop, NoRoute> {
    let (host, port) = crate::config::split_route(route).map_err(|e| NoRoute::Temporary(format!("route {route:?}: {e}")))?;
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((host.as_str(), port)).await.map_err(|e| NoRoute::Temporary(format!("route {route}: {e}")))?.collect();
    Ok(Hop { name: route.to_string(), addrs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_route_wins_over_the_smarthost_and_dns() {
        let routes = BTreeMap::from([("Example.ORG".to_string(), "127.0.0.1:2626".to_string()), ("*".to_string(), "127.0.0.1:2727".to_string())]);
        let router = Router::new(&routes, Arc::new(crate::dns::Dns::new(&[])), 25);
        let hops = router.hops("example.org").await.unwrap();
        assert_eq!(hops[0].addrs, ["127.0.0.1:2626".parse().unwrap()]);
        let hops = router.hops("elsewhere.test").await.unwrap();
        assert_eq!(hops[0].addrs, ["127.0.0.1:2727".parse().unwrap()]);
    }
}
