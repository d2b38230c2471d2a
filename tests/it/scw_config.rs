//! The Scaleway settings from the `scw` CLI's config file, as `scw init` writes it, with
//! profiles and the `SCW_*` variables over it.

use std::collections::HashMap;

use armbot::config::{FileSettings, Settings};
use secrecy::ExposeSecret;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/scw");
const TOP_KEY: &str = "11111111-1111-4111-8111-111111111111";
const ARMBOT_KEY: &str = "22222222-2222-4222-8222-222222222222";

fn load(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
    let mut env: HashMap<String, String> =
        HashMap::from([("GITLAB_WEBHOOK_TOKEN".into(), "t".into())]);
    for (k, v) in vars {
        env.insert((*k).into(), (*v).into());
    }
    Settings::from_parts(FileSettings::default(), &move |k| env.get(k).cloned(), None)
}

fn key(s: &Settings) -> String {
    s.scaleway
        .secret_key
        .as_ref()
        .expect("secret key")
        .expose_secret()
        .to_owned()
}

#[test]
fn the_default_profile_is_the_top_of_the_file() {
    let path = format!("{DATA}/config-init-then-profile.yaml");
    let s = load(&[("SCW_CONFIG_PATH", &path)]).expect("valid");
    assert_eq!(key(&s), TOP_KEY);
    assert_eq!(
        s.scaleway.project_id.as_deref(),
        Some("44444444-4444-4444-8444-444444444444")
    );
    assert_eq!(
        s.scaleway.organization_id.as_deref(),
        Some("33333333-3333-4333-8333-333333333333")
    );
    assert_eq!(s.scaleway.default_zone.as_deref(), Some("fr-par-2"));
    // `api_url` is commented out, as `scw init` leaves it.
    assert_eq!(s.scaleway.api_url, None);
    assert_eq!(
        s.scaleway.config_file,
        Some(format!("{path} (profile default)"))
    );
    // And the fleet commands have all they need from it.
    assert!(armbot::fleet::missing_settings(&s.scaleway, &s.fleet).is_none());
    // `SCW_PROFILE=default` names the same.
    let s = load(&[("SCW_CONFIG_PATH", &path), ("SCW_PROFILE", "default")]).expect("valid");
    assert_eq!(key(&s), TOP_KEY);
}

#[test]
fn scw_profile_picks_a_profile_laid_over_the_top() {
    let path = format!("{DATA}/config-init-then-profile.yaml");
    let s = load(&[("SCW_CONFIG_PATH", &path), ("SCW_PROFILE", "armbot")]).expect("valid");
    assert_eq!(key(&s), ARMBOT_KEY);
    assert_eq!(s.scaleway.default_zone.as_deref(), Some("nl-ams-1"));
    assert_eq!(
        s.scaleway.project_id.as_deref(),
        Some("55555555-5555-4555-8555-555555555555")
    );
    assert_eq!(
        s.scaleway.config_file,
        Some(format!("{path} (profile armbot)"))
    );
}

#[test]
fn active_profile_in_the_file_is_used_without_scw_profile() {
    let path = format!("{DATA}/config-init-profile-only.yaml");
    let s = load(&[("SCW_CONFIG_PATH", &path)]).expect("valid");
    assert_eq!(key(&s), ARMBOT_KEY);
    assert_eq!(s.scaleway.default_zone.as_deref(), Some("nl-ams-1"));
    // SCW_PROFILE wins over active_profile: the top of this file has no keys.
    let s = load(&[("SCW_CONFIG_PATH", &path), ("SCW_PROFILE", "default")]).expect("valid");
    assert!(s.scaleway.secret_key.is_none());
    assert!(armbot::fleet::missing_settings(&s.scaleway, &s.fleet).is_some());
}

#[test]
fn scw_variables_override_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("scw-key");
    std::fs::write(&key_file, "99999999-9999-4999-8999-999999999999\n").expect("write");
    let path = format!("{DATA}/config-init-then-profile.yaml");
    let s = load(&[
        ("SCW_CONFIG_PATH", &path),
        ("SCW_PROFILE", "armbot"),
        ("SCW_DEFAULT_ZONE", "pl-waw-1"),
        ("SCW_API_URL", "http://127.0.0.1:9"),
        ("SCW_SECRET_KEY_FILE", key_file.to_str().expect("path")),
    ])
    .expect("valid");
    assert_eq!(key(&s), "99999999-9999-4999-8999-999999999999");
    assert_eq!(s.scaleway.default_zone.as_deref(), Some("pl-waw-1"));
    assert_eq!(s.scaleway.api_url.as_deref(), Some("http://127.0.0.1:9"));
    // What the variables do not set still comes from the profile.
    assert_eq!(
        s.scaleway.project_id.as_deref(),
        Some("55555555-5555-4555-8555-555555555555")
    );
}

#[test]
fn the_file_is_found_where_scw_looks() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path().join(".config/scw");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let home_path = home.path().to_str().expect("path");
    // Nothing there yet: the variables alone count.
    let s = load(&[("HOME", home_path)]).expect("valid");
    assert_eq!(s.scaleway.config_file, None);
    assert!(s.scaleway.secret_key.is_none());

    // `config.yml` is read when there is no `config.yaml`, as newer `scw` does.
    std::fs::copy(
        format!("{DATA}/config-init-profile-only.yaml"),
        dir.join("config.yml"),
    )
    .expect("copy");
    let s = load(&[("HOME", home_path)]).expect("valid");
    assert_eq!(key(&s), ARMBOT_KEY);
    std::fs::copy(
        format!("{DATA}/config-init-then-profile.yaml"),
        dir.join("config.yaml"),
    )
    .expect("copy");
    let s = load(&[("HOME", home_path)]).expect("valid");
    assert_eq!(key(&s), TOP_KEY);
    let shown = s.scaleway.config_file.expect("read a file");
    assert!(
        shown.ends_with(".config/scw/config.yaml (profile default)"),
        "{shown}"
    );

    // XDG_CONFIG_HOME comes before HOME.
    let xdg = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(xdg.path().join("scw")).expect("mkdir");
    std::fs::copy(
        format!("{DATA}/config-init-profile-only.yaml"),
        xdg.path().join("scw/config.yaml"),
    )
    .expect("copy");
    let s = load(&[
        ("HOME", home_path),
        ("XDG_CONFIG_HOME", xdg.path().to_str().expect("path")),
    ])
    .expect("valid");
    assert_eq!(key(&s), ARMBOT_KEY);
}

#[test]
fn a_wrong_file_or_profile_is_refused_without_showing_the_key() {
    let path = format!("{DATA}/config-init-then-profile.yaml");
    let err = load(&[("SCW_CONFIG_PATH", &path), ("SCW_PROFILE", "prod")]).expect_err("no prod");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("no profile `prod` (named by SCW_PROFILE)"),
        "{msg}"
    );
    assert!(msg.contains("default, armbot"), "{msg}");
    assert!(!msg.contains(TOP_KEY) && !msg.contains(ARMBOT_KEY), "{msg}");

    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("absent.yaml");
    let err = load(&[("SCW_CONFIG_PATH", missing.to_str().expect("path"))])
        .expect_err("named but absent");
    assert!(
        format!("{err:#}").starts_with("cannot read the scw config file"),
        "{err:#}"
    );

    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "secret_key: 77777777-7777-4777-8777-777777777777\n  default_zone: [fr-par-1\n",
    )
    .expect("write");
    let err = load(&[("SCW_CONFIG_PATH", broken.to_str().expect("path"))]).expect_err("broken");
    let msg = format!("{err:#}");
    assert!(msg.contains("is not valid YAML"), "{msg}");
    assert!(!msg.contains("77777777"), "{msg}");

    // A file of comments only, as `scw` leaves one with nothing set, is an empty profile.
    let comments = dir.path().join("comments.yaml");
    std::fs::write(
        &comments,
        "# Scaleway configuration file\n# access_key: SCW1\n",
    )
    .expect("write");
    let s = load(&[("SCW_CONFIG_PATH", comments.to_str().expect("path"))]).expect("valid");
    assert!(s.scaleway.secret_key.is_none());
}
