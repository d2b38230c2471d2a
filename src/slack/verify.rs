//! Verifying that a request came from Slack: `v0` HMAC-SHA256 over the raw body.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Slack's replay window, applied both ways (Slack's own pseudocode uses |Δ|).
pub const MAX_SKEW_SECS: i64 = 300;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("missing X-Slack-Request-Timestamp or X-Slack-Signature")]
    MissingHeaders,
    #[error("X-Slack-Request-Timestamp is not a number")]
    BadTimestamp,
    #[error("X-Slack-Request-Timestamp is more than 5 minutes away")]
    Stale,
    #[error("X-Slack-Signature does not match")]
    BadSignature,
}

/// Checks `X-Slack-Signature` against `v0:{timestamp}:{body}`.
pub fn verify(
    secret: &SecretString,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), VerifyError> {
    let (ts, given) = signature_headers(timestamp, signature, now_unix)?;
    let expected = mac(secret.expose_secret().as_bytes(), ts, body);
    if bool::from(given.as_slice().ct_eq(&expected)) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// Everything [`verify`] checks that does not need the body: both headers present, the
/// timestamp fresh, the signature of the right form. Lets a stranger's request be refused
/// before its body is read.
pub fn verify_headers(
    timestamp: Option<&str>,
    signature: Option<&str>,
    now_unix: i64,
) -> Result<(), VerifyError> {
    signature_headers(timestamp, signature, now_unix).map(|_| ())
}

/// The timestamp and the decoded signature.
fn signature_headers<'a>(
    timestamp: Option<&'a str>,
    signature: Option<&str>,
    now_unix: i64,
) -> Result<(&'a str, Vec<u8>), VerifyError> {
    let (Some(ts), Some(sig)) = (timestamp, signature) else {
        return Err(VerifyError::MissingHeaders);
    };
    let ts_num: i64 = ts.parse().map_err(|_| VerifyError::BadTimestamp)?;
    if (now_unix - ts_num).abs() > MAX_SKEW_SECS {
        return Err(VerifyError::Stale);
    }
    let given = sig
        .strip_prefix("v0=")
        .filter(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .and_then(|h| hex::decode(h).ok())
        .ok_or(VerifyError::BadSignature)?;
    Ok((ts, given))
}

/// The signature Slack would send for this body, as `v0=<hex>`.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "v0={}",
        hex::encode(mac(secret.as_bytes(), timestamp, body))
    )
}

fn mac(key: &[u8], ts: &str, body: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(b"v0:");
    m.update(ts.as_bytes());
    m.update(b":");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's documented example (shared/fixtures/slack/signature-vectors.md, V1).
    const V1_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const V1_TS: &str = "1531420618";
    const V1_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const V1_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    #[test]
    fn slack_documented_vector() {
        assert_eq!(signature(V1_SECRET, V1_TS, V1_BODY.as_bytes()), V1_SIG);
        let s = secret(V1_SECRET);
        assert_eq!(
            verify(
                &s,
                Some(V1_TS),
                Some(V1_SIG),
                V1_BODY.as_bytes(),
                1_531_420_618
            ),
            Ok(())
        );
    }

    #[test]
    fn slack_morphism_vector() {
        let s = secret("fa2c05deeef5a4077494e89f54394de0");
        let sig = "v0=baa91ef62d346e56607bbdd278a8acd570b91226854f15a382f43d33be42f666";
        assert_eq!(
            verify(
                &s,
                Some("1531420618"),
                Some(sig),
                b"test-body",
                1_531_420_620
            ),
            Ok(())
        );
    }

    #[test]
    fn derived_negative_vectors() {
        let s = secret(V1_SECRET);
        let tampered = format!("{V1_BODY}------");
        assert_eq!(
            signature(V1_SECRET, V1_TS, tampered.as_bytes()),
            "v0=54d12afb4ea9655825354a816a2a8548469aa0da991a1fae65b0ee5bd4f32b6b"
        );
        let now = 1_531_420_618;
        assert_eq!(
            verify(&s, Some(V1_TS), Some(V1_SIG), tampered.as_bytes(), now),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(
                &s,
                Some("1531420619"),
                Some(V1_SIG),
                V1_BODY.as_bytes(),
                now
            ),
            Err(VerifyError::BadSignature),
            "the timestamp is signed"
        );
        assert_eq!(
            signature(V1_SECRET, V1_TS, b""),
            "v0=55f41ec73231010289b54e669149ea021fccab11b5524355523533ce930cb739"
        );
    }

    #[test]
    fn window_both_ways() {
        let s = secret(V1_SECRET);
        let body = V1_BODY.as_bytes();
        let ts = 1_531_420_618;
        assert_eq!(
            verify(&s, Some(V1_TS), Some(V1_SIG), body, ts + 300),
            Ok(())
        );
        assert_eq!(
            verify(&s, Some(V1_TS), Some(V1_SIG), body, ts + 301),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(&s, Some(V1_TS), Some(V1_SIG), body, ts - 301),
            Err(VerifyError::Stale)
        );
    }

    #[test]
    fn malformed_headers() {
        let s = secret(V1_SECRET);
        let body = V1_BODY.as_bytes();
        let now = 1_531_420_618;
        assert_eq!(
            verify(&s, None, Some(V1_SIG), body, now),
            Err(VerifyError::MissingHeaders)
        );
        assert_eq!(
            verify(&s, Some(V1_TS), None, body, now),
            Err(VerifyError::MissingHeaders)
        );
        assert_eq!(
            verify(&s, Some("soon"), Some(V1_SIG), body, now),
            Err(VerifyError::BadTimestamp)
        );
        let no_prefix = V1_SIG.trim_start_matches("v0=");
        assert_eq!(
            verify(&s, Some(V1_TS), Some(no_prefix), body, now),
            Err(VerifyError::BadSignature)
        );
        let v1 = V1_SIG.replace("v0=", "v1=");
        assert_eq!(
            verify(&s, Some(V1_TS), Some(&v1), body, now),
            Err(VerifyError::BadSignature)
        );
        let upper = format!("v0={}", V1_SIG.trim_start_matches("v0=").to_uppercase());
        assert_eq!(
            verify(&s, Some(V1_TS), Some(&upper), body, now),
            Err(VerifyError::BadSignature)
        );
    }
}
