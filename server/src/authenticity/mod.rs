//! Authenticity of mail: DKIM signing of what this server's users send, and the checks of
//! what it receives (SPF, DKIM, DMARC, ARC) — `mail-auth` does the cryptography and parses
//! the records; this module decides what is signed and checked, with which keys, and what
//! the results become.
//!
//! - [`keys`]: DKIM key files, `wasmail dkim keygen`.
//! - [`signing`]: the `[[dkim.signer]]` signers.
//! - [`verify`]: SPF, DKIM, ARC and DMARC of mail received; `Authentication-Results:`.
//! - [`srs`]: the envelope sender of forwarded mail, rewritten, and bounces to it reversed.
//! - [`arc`]: the ARC seal on forwarded mail.

pub mod arc;
pub mod keys;
pub mod signing;
pub mod srs;
pub mod verify;
