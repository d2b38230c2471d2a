//! Authenticating GitLab webhook deliveries on the raw bytes, before parsing.

use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::settings::GitlabSecrets;

/// Standard Webhooks tolerance for `webhook-timestamp`.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 5 * 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing X-Gitlab-Token")]
    MissingToken,
    #[error("X-Gitlab-Token does not match")]
    BadToken,
    #[error("missing webhook-id, webhook-timestamp or webhook-signature")]
    MissingSignature,
    #[error("webhook-timestamp is not a number")]
    BadTimestamp,
    #[error("webhook-timestamp is outside the 5 minute window")]
    StaleTimestamp,
    #[error("webhook-signature does not match")]
    BadSignature,
}

/// The headers that take part in authentication.
#[derive(Debug, Default, Clone, Copy)]
pub struct AuthHeaders<'a> {
    pub token: Option<&'a str>,
    pub webhook_id: Option<&'a str>,
    pub webhook_timestamp: Option<&'a str>,
    pub webhook_signature: Option<&'a str>,
}

/// When a signing token is configured the signature is required; otherwise
/// the secret token is. When both are configured, both must pass.
pub fn verify(
    secrets: &GitlabSecrets,
    headers: &AuthHeaders<'_>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), AuthError> {
    if let Some(key_b64) = &secrets.signing_key {
        verify_signature(key_b64.expose_secret(), headers, body, now_unix)?;
    }
    verify_token(secrets, headers)
}

/// Everything [`verify`] checks that does not need the body: the token, and
/// that a required signature's headers are present and fresh. Lets a large
/// body be refused before it is read.
pub fn verify_headers(
    secrets: &GitlabSecrets,
    headers: &AuthHeaders<'_>,
    now_unix: i64,
) -> Result<(), AuthError> {
    if secrets.signing_key.is_some() {
        signature_headers(headers, now_unix)?;
    }
    verify_token(secrets, headers)
}

/// `webhook-id`, `webhook-timestamp` and `webhook-signature`, all present and
/// the timestamp within the tolerance.
fn signature_headers<'a>(
    headers: &AuthHeaders<'a>,
    now_unix: i64,
) -> Result<(&'a str, &'a str, &'a str), AuthError> {
    let (Some(id), Some(ts), Some(sigs)) = (
        headers.webhook_id,
        headers.webhook_timestamp,
        headers.webhook_signature,
    ) else {
        return Err(AuthError::MissingSignature);
    };
    let ts_num: i64 = ts.trim().parse().map_err(|_| AuthError::BadTimestamp)?;
    if (now_unix - ts_num).abs() > SIGNATURE_TOLERANCE_SECS {
        return Err(AuthError::StaleTimestamp);
    }
    Ok((id, ts, sigs))
}

fn verify_token(secrets: &GitlabSecrets, headers: &AuthHeaders<'_>) -> Result<(), AuthError> {
    if !secrets.tokens.is_empty() {
        let given = headers.token.ok_or(AuthError::MissingToken)?;
        // Check every configured token so timing does not reveal which matched.
        let matched = secrets.tokens.iter().fold(0u8, |acc, t| {
            acc | u8::from(bool::from(
                t.expose_secret().as_bytes().ct_eq(given.as_bytes()),
            ))
        });
        if matched == 0 {
            return Err(AuthError::BadToken);
        }
    }
    Ok(())
}

fn verify_signature(
    key_b64: &str,
    headers: &AuthHeaders<'_>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), AuthError> {
    let (id, ts, sigs) = signature_headers(headers, now_unix)?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_b64)
        .map_err(|_| AuthError::BadSignature)?;
    let expected = sign(&key, id, ts, body);
    // The header may carry several space-separated signatures (key rotation).
    let ok = sigs
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .any(|given| bool::from(given.as_slice().ct_eq(&expected)));
    if ok {
        Ok(())
    } else {
        Err(AuthError::BadSignature)
    }
}

/// HMAC-SHA256 over `id.timestamp.body`, as Standard Webhooks defines it.
pub fn sign(key: &[u8], id: &str, ts: &str, body: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn secrets(tokens: &[&str], key: Option<&[u8]>) -> GitlabSecrets {
        GitlabSecrets {
            tokens: tokens
                .iter()
                .map(|t| SecretString::from(t.to_string()))
                .collect(),
            signing_key: key
                .map(|k| SecretString::from(base64::engine::general_purpose::STANDARD.encode(k))),
        }
    }

    #[test]
    fn headers_alone_are_checked_as_far_as_they_go() {
        let s = secrets(&["tok"], Some(b"key"));
        let good = AuthHeaders {
            token: Some("tok"),
            webhook_id: Some("msg_1"),
            webhook_timestamp: Some("1000"),
            // Not checked without the body: only its presence is.
            webhook_signature: Some("v1,anything"),
        };
        assert_eq!(verify_headers(&s, &good, 1000), Ok(()));
        let wrong_token = AuthHeaders {
            token: Some("nope"),
            ..good
        };
        assert_eq!(
            verify_headers(&s, &wrong_token, 1000),
            Err(AuthError::BadToken)
        );
        let unsigned = AuthHeaders {
            webhook_signature: None,
            ..good
        };
        assert_eq!(
            verify_headers(&s, &unsigned, 1000),
            Err(AuthError::MissingSignature)
        );
        assert_eq!(
            verify_headers(&s, &good, 1000 + SIGNATURE_TOLERANCE_SECS + 1),
            Err(AuthError::StaleTimestamp)
        );
        // The full check still needs the signature to match the body.
        assert_eq!(verify(&s, &good, b"{}", 1000), Err(AuthError::BadSignature));
    }

    #[test]
    fn any_rotated_token_passes() {
        let s = secrets(&["old", "new"], None);
        for t in ["old", "new"] {
            let h = AuthHeaders {
                token: Some(t),
                ..Default::default()
            };
            assert_eq!(verify(&s, &h, b"{}", 0), Ok(()));
        }
        let h = AuthHeaders {
            token: Some("nope"),
            ..Default::default()
        };
        assert_eq!(verify(&s, &h, b"{}", 0), Err(AuthError::BadToken));
        assert_eq!(
            verify(&s, &AuthHeaders::default(), b"{}", 0),
            Err(AuthError::MissingToken)
        );
    }

    #[test]
    fn signature_round_trip_and_tamper() {
        let key = [7u8; 32];
        let s = secrets(&[], Some(&key));
        let body = br#"{"object_kind":"pipeline"}"#;
        let sig =
            base64::engine::general_purpose::STANDARD.encode(sign(&key, "msg_1", "1000", body));
        let header = format!("v1,{sig}");
        let h = AuthHeaders {
            webhook_id: Some("msg_1"),
            webhook_timestamp: Some("1000"),
            webhook_signature: Some(&header),
            ..Default::default()
        };
        assert_eq!(verify(&s, &h, body, 1000), Ok(()));
        assert_eq!(verify(&s, &h, body, 1000 + 300), Ok(()));
        assert_eq!(
            verify(&s, &h, body, 1000 + 301),
            Err(AuthError::StaleTimestamp)
        );
        assert_eq!(
            verify(&s, &h, body, 1000 - 301),
            Err(AuthError::StaleTimestamp)
        );
        assert_eq!(
            verify(&s, &h, b"{\"object_kind\":\"pipelinf\"}", 1000),
            Err(AuthError::BadSignature)
        );
        let other_id = AuthHeaders {
            webhook_id: Some("msg_2"),
            ..h
        };
        assert_eq!(
            verify(&s, &other_id, body, 1000),
            Err(AuthError::BadSignature)
        );
        let rotated = format!("v1,AAAA v1,{sig}");
        let multi = AuthHeaders {
            webhook_signature: Some(&rotated),
            ..h
        };
        assert_eq!(verify(&s, &multi, body, 1000), Ok(()));
        let no_sig = AuthHeaders {
            webhook_signature: None,
            ..h
        };
        assert_eq!(
            verify(&s, &no_sig, body, 1000),
            Err(AuthError::MissingSignature)
        );
        let bad_ts = AuthHeaders {
            webhook_timestamp: Some("soon"),
            ..h
        };
        assert_eq!(
            verify(&s, &bad_ts, body, 1000),
            Err(AuthError::BadTimestamp)
        );
    }

    #[test]
    fn both_configured_means_both_required() {
        let key = [1u8; 32];
        let s = secrets(&["tok"], Some(&key));
        let sig = base64::engine::general_purpose::STANDARD.encode(sign(&key, "i", "5", b"x"));
        let header = format!("v1,{sig}");
        let signed = AuthHeaders {
            webhook_id: Some("i"),
            webhook_timestamp: Some("5"),
            webhook_signature: Some(&header),
            token: None,
        };
        assert_eq!(verify(&s, &signed, b"x", 5), Err(AuthError::MissingToken));
        let both = AuthHeaders {
            token: Some("tok"),
            ..signed
        };
        assert_eq!(verify(&s, &both, b"x", 5), Ok(()));
    }
}
