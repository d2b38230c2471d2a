//! The Scaleway CLI's config file, read as `scw` reads it (scaleway-sdk-go `scw/config.go`,
//! `scw/path.go`, `scw/env.go`), so a runner manager set up with `scw init` needs nothing more:
//!
//! - the file: `SCW_CONFIG_PATH`, else `$XDG_CONFIG_HOME/scw/config.yaml`, else
//!   `$HOME/.config/scw/config.yaml` (then `config.yml` beside it, as newer `scw` does);
//! - the profile: `SCW_PROFILE`, else the file's `active_profile`, else the keys at the top of
//!   the file. `default` names the top; a named profile is laid over the top keys;
//! - the `SCW_*` variables override the file key by key.
//!
//! Where armbot is stricter than `scw`: a file named by `SCW_CONFIG_PATH` that does not exist,
//! and `SCW_PROFILE` with no file at all, are errors rather than silently ignored.

use std::{collections::HashMap, path::PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// The keys of one profile that armbot uses; `access_key`, `default_region`, `insecure`,
/// `send_telemetry` and anything else are ignored, as unknown keys are by `scw`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct Profile {
    pub secret_key: Option<String>,
    pub default_organization_id: Option<String>,
    pub default_project_id: Option<String>,
    pub default_zone: Option<String>,
    pub api_url: Option<String>,
}

impl Profile {
    /// `self` with every key `over` sets replaced (scaleway-sdk-go `MergeProfiles`).
    fn overlaid(self, over: Profile) -> Profile {
        Profile {
            secret_key: over.secret_key.or(self.secret_key),
            default_organization_id: over
                .default_organization_id
                .or(self.default_organization_id),
            default_project_id: over.default_project_id.or(self.default_project_id),
            default_zone: over.default_zone.or(self.default_zone),
            api_url: over.api_url.or(self.api_url),
        }
    }
}

/// The file: the top-level profile, which profile is active, the named ones.
#[derive(Debug, Default, Deserialize)]
struct File {
    secret_key: Option<String>,
    default_organization_id: Option<String>,
    default_project_id: Option<String>,
    default_zone: Option<String>,
    api_url: Option<String>,
    active_profile: Option<String>,
    /// A profile written with no keys is `null`.
    #[serde(default)]
    profiles: HashMap<String, Option<Profile>>,
}

/// The profile in force and where it came from.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub profile: Profile,
    /// `path (profile name)`, for `armbot check-config`; `None` when no file was read.
    pub source: Option<String>,
}

/// Reads the config file `env` points to, picks the profile, and lays the `SCW_*` variables
/// over it. No file at the default places is not an error: the variables alone then count.
pub fn load(env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Loaded> {
    let get = |name: &str| {
        env(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let wanted = get("SCW_PROFILE");
    let from_file = match config_path(&get) {
        Some(path) => read(&path, wanted.as_deref())?,
        None => {
            if wanted.is_some() {
                bail!(
                    "SCW_PROFILE is set but there is no scw config file (SCW_CONFIG_PATH, \
                     $XDG_CONFIG_HOME/scw/config.yaml or $HOME/.config/scw/config.yaml)"
                );
            }
            Loaded::default()
        }
    };
    let from_env = Profile {
        secret_key: get("SCW_SECRET_KEY"),
        default_organization_id: get("SCW_DEFAULT_ORGANIZATION_ID"),
        default_project_id: get("SCW_DEFAULT_PROJECT_ID"),
        default_zone: get("SCW_DEFAULT_ZONE"),
        api_url: get("SCW_API_URL"),
    };
    Ok(Loaded {
        profile: from_file.profile.overlaid(from_env),
        source: from_file.source,
    })
}

/// The file to read: `SCW_CONFIG_PATH` whether or not it exists (reading it then says why
/// not), else the first of the default places that exists.
fn config_path(get: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(path) = get("SCW_CONFIG_PATH") {
        return Some(PathBuf::from(path));
    }
    let dir = match get("XDG_CONFIG_HOME") {
        Some(xdg) => PathBuf::from(xdg).join("scw"),
        None => PathBuf::from(get("HOME")?).join(".config").join("scw"),
    };
    ["config.yaml", "config.yml"]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

fn read(path: &std::path::Path, wanted: Option<&str>) -> anyhow::Result<Loaded> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the scw config file {shown}"))?;
    // A file of comments only (what `scw init` leaves before any key is set) is empty YAML.
    let file: File = if text.lines().all(|l| {
        let l = l.trim_start();
        l.is_empty() || l.starts_with('#')
    }) {
        File::default()
    } else {
        // The parser's message quotes the offending line, which may hold the secret key.
        serde_saphyr::from_str(&text).map_err(|_| {
            anyhow::anyhow!("the scw config file {shown} is not valid YAML of the scw format")
        })?
    };
    let top = Profile {
        secret_key: file.secret_key,
        default_organization_id: file.default_organization_id,
        default_project_id: file.default_project_id,
        default_zone: file.default_zone,
        api_url: file.api_url,
    };
    let (name, origin) = match (wanted, file.active_profile.as_deref()) {
        (Some(name), _) => (name.to_owned(), "SCW_PROFILE"),
        (None, Some(name)) if !name.trim().is_empty() => {
            (name.trim().to_owned(), "its active_profile")
        }
        _ => ("default".to_owned(), ""),
    };
    let profile = if name == "default" {
        top
    } else {
        match file.profiles.get(&name) {
            Some(named) => top.overlaid(named.clone().unwrap_or_default()),
            None => bail!(
                "the scw config file {shown} has no profile `{name}` (named by {origin}); \
                 it has: default{}",
                file.profiles
                    .keys()
                    .map(|k| format!(", {k}"))
                    .collect::<String>()
            ),
        }
    };
    Ok(Loaded {
        profile,
        source: Some(format!("{shown} (profile {name})")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_merge_over_the_top_keys() {
        let top = Profile {
            secret_key: Some("top-key".into()),
            default_zone: Some("fr-par-1".into()),
            ..Profile::default()
        };
        let named = Profile {
            default_zone: Some("nl-ams-1".into()),
            default_project_id: Some("p".into()),
            ..Profile::default()
        };
        let merged = top.overlaid(named);
        assert_eq!(merged.secret_key.as_deref(), Some("top-key"));
        assert_eq!(merged.default_zone.as_deref(), Some("nl-ams-1"));
        assert_eq!(merged.default_project_id.as_deref(), Some("p"));
    }

    #[test]
    fn no_file_anywhere_is_the_variables_alone() {
        let env = |k: &str| (k == "SCW_DEFAULT_ZONE").then(|| "fr-par-2".to_owned());
        let loaded = load(&env).expect("no file is fine");
        assert_eq!(loaded.source, None);
        assert_eq!(loaded.profile.default_zone.as_deref(), Some("fr-par-2"));
        let env = |k: &str| (k == "SCW_PROFILE").then(|| "armbot".to_owned());
        let err = load(&env).expect_err("a profile with no file");
        assert!(err.to_string().starts_with("SCW_PROFILE is set"), "{err}");
    }
}
