//! The GitLab webhook secrets: `GITLAB_WEBHOOK_TOKEN` and `GITLAB_WEBHOOK_SIGNING_TOKEN`.

use anyhow::bail;
use secrecy::SecretString;

/// GitLab webhook secrets. Several plain tokens are accepted so they can be rotated.
#[derive(Clone, Default)]
pub struct GitlabSecrets {
    pub tokens: Vec<SecretString>,
    /// The base64 HMAC key of a `whsec_…` signing token.
    pub signing_key: Option<SecretString>,
}

impl std::fmt::Debug for GitlabSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitlabSecrets")
            .field("tokens", &format_args!("{} set", self.tokens.len()))
            .field("signing_key", &self.signing_key.as_ref().map(|_| "set"))
            .finish()
    }
}

impl GitlabSecrets {
    /// From the environment; at least one of the two secrets is required.
    pub fn load(env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let secrets = Self {
            tokens: env("GITLAB_WEBHOOK_TOKEN")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(|t| SecretString::from(t.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            signing_key: match env("GITLAB_WEBHOOK_SIGNING_TOKEN") {
                Some(t) => Some(decode_signing_token(&t)?),
                None => None,
            },
        };
        if secrets.tokens.is_empty() && secrets.signing_key.is_none() {
            bail!(
                "set GITLAB_WEBHOOK_TOKEN (secret token) or GITLAB_WEBHOOK_SIGNING_TOKEN (whsec_…) so webhooks can be authenticated"
            );
        }
        Ok(secrets)
    }
}

/// `whsec_<base64 key>` → the key, checked to decode and kept base64 (the raw bytes are not
/// text); decoded again on use.
fn decode_signing_token(token: &str) -> anyhow::Result<SecretString> {
    use base64::Engine;
    let Some(b64) = token.trim().strip_prefix("whsec_") else {
        bail!("GITLAB_WEBHOOK_SIGNING_TOKEN must start with whsec_");
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| {
            anyhow::anyhow!("GITLAB_WEBHOOK_SIGNING_TOKEN is not whsec_ followed by base64")
        })?;
    if key.is_empty() {
        bail!("GITLAB_WEBHOOK_SIGNING_TOKEN holds an empty key");
    }
    Ok(SecretString::from(b64.to_string()))
}
