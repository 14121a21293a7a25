//! ARC sealing (RFC 8617) of mail this server forwards to another domain: the checks are run
//! again on the message as it leaves (with the envelope it arrived with), and a new set —
//! `ARC-Seal`, `ARC-Message-Signature`, `ARC-Authentication-Results` — goes on top, signed by
//! the RSA `[[dkim.signer]]` of the server's `hostname` domain (or a parent of it). A next hop
//! that trusts this server can then take the original results even though forwarding broke
//! SPF (and a footer would break DKIM). A chain that arrived broken (`cv=fail`) is not
//! sealed again (RFC 8617 5.1.2).

use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::MessageAuthenticator;

use super::signing::{unfold_last_tag, Signers};
use super::verify::{self, Client};

/// The ARC set (three fields, CRLF-ended) for `content`, or None when no signer covers the
/// hostname, the message cannot be read, or its chain failed.
pub async fn seal(auth: &MessageAuthenticator, signers: &Signers, client: &Client<'_>, content: &[u8]) -> Result<Option<String>, String> {
    let Some(sealer) = signers.sealer_for(client.hostname) else { return Ok(None) };
    let Some(message) = verify::parse(content) else { return Ok(None) };
    let spf = verify::check_spf(auth, client).await;
    let evaluation = verify::evaluate(auth, client, spf, &message).await;
    if !evaluation.arc.can_be_sealed() {
        return Ok(None);
    }
    let set = sealer.seal(&message, &evaluation.header, &evaluation.arc).map_err(|e| e.to_string())?;
    Ok(Some(unfold_last_tag(&set.to_header())))
}
