//! What POP3 and IMAP (and later SMTP) share of authentication: the SASL PLAIN message
//! (RFC 4616) and the password check, which runs on the blocking pool because argon2 is slow
//! on purpose.

use std::sync::Arc;

use crate::directory::Directory;

/// A PLAIN response, decoded.
#[derive(Debug, PartialEq, Eq)]
pub struct Plain {
    pub user: String,
    pub password: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PlainError {
    /// Not base64 of `authzid NUL authcid NUL password` in UTF-8.
    Malformed,
    /// An authorization identity other than the user's own: acting for another user is not
    /// offered.
    OtherIdentity,
}

/// Decodes a PLAIN response (base64).
pub fn decode_plain(response: &str) -> Result<Plain, PlainError> {
    let decoded = crate::mime::transfer::decode_base64(response.as_bytes());
    let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
    let [authzid, user, password] = parts.as_slice() else { return Err(PlainError::Malformed) };
    let (Ok(user), Ok(password)) = (std::str::from_utf8(user), std::str::from_utf8(password)) else {
        return Err(PlainError::Malformed);
    };
    if user.is_empty() {
        return Err(PlainError::Malformed);
    }
    if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(user.as_bytes()) {
        return Err(PlainError::OtherIdentity);
    }
    Ok(Plain { user: user.to_string(), password: password.to_string() })
}

/// Whether `password` is `user`'s, checked on the blocking pool.
pub async fn check_password(directory: &Arc<Directory>, user: &str, password: &str) -> bool {
    let (directory, user, password) = (Arc::clone(directory), user.to_string(), password.to_string());
    tokio::task::spawn_blocking(move || directory.verify_password(&user, &password)).await.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_responses() {
        assert_eq!(decode_plain("AGh1bnQAc2VjcmV0"), Ok(Plain { user: "hunt".into(), password: "secret".into() }));
        assert_eq!(decode_plain("aHVudABodW50AHNlY3JldA=="), Ok(Plain { user: "hunt".into(), password: "secret".into() }));
        assert_eq!(decode_plain("dHlsZXIAaHVudABzZWNyZXQ="), Err(PlainError::OtherIdentity));
        assert_eq!(decode_plain("bm8gbnVscw=="), Err(PlainError::Malformed));
        assert_eq!(decode_plain(""), Err(PlainError::Malformed));
    }
}
