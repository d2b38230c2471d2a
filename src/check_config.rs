//! `armbot check-config`: every setting (secrets only as set or unset), which features are
//! on and what each one that is off lacks, and problems loading did not already refuse.

use std::fmt::Write as _;

use secrecy::SecretString;

use crate::{
    config::Settings,
    fleet::{missing_settings, settings::DEFAULT_API_URL},
    reap::MachineIndex,
    slack::settings::TeamPolicy,
};

/// The whole report, and whether the settings are free of problems.
pub fn report(settings: &Settings) -> (String, bool) {
    let mut out = String::new();
    match &settings.config_path {
        Some(p) => {
            let _ = writeln!(out, "settings file: {}", p.display());
        }
        None => out.push_str("settings file: none (environment only)\n"),
    }
    for (k, v) in describe(settings) {
        let _ = writeln!(out, "  {k:<30} {v}");
    }
    out.push_str("features:\n");
    for (name, state) in features(settings) {
        let _ = match state {
            Ok(()) => writeln!(out, "  on   {name}"),
            Err(why) => writeln!(out, "  off  {name}: {why}"),
        };
    }
    let problems = problems(settings);
    for p in &problems {
        let _ = writeln!(out, "error: {p}");
    }
    (out, problems.is_empty())
}

/// Which features are on; for each one off, the settings it lacks.
pub fn features(s: &Settings) -> Vec<(&'static str, Result<(), String>)> {
    let joined = |m: Vec<String>| {
        if m.is_empty() {
            Ok(())
        } else {
            Err(m.join("; "))
        }
    };
    let slack_missing: Vec<String> = if s.slack.signing_secret.is_none() {
        vec!["SLACK_SIGNING_SECRET".into()]
    } else {
        Vec::new()
    };
    let posting = if s.console_mode() {
        Err("missing SLACK_BOT_TOKEN (console mode: messages are printed)".into())
    } else {
        Ok(())
    };
    let mut fleet_missing = slack_missing.clone();
    fleet_missing.extend(missing_settings(&s.scaleway, &s.fleet).map(|m| m.to_string()));
    let mut reap_missing = fleet_missing.clone();
    if s.reap.allowed_users.is_empty() && s.reap.allowed_usergroup.is_none() {
        reap_missing.push("[reap] allowed_users (nobody may confirm)".into());
    }
    let watch = match &s.watch.off {
        None => Ok(()),
        Some(why) => Err(why.clone()),
    };
    let auto_reap = if !s.watch.auto_reap {
        Err(
            "`auto_reap` is false under `[watch]` (the default): a person confirms each reap"
                .into(),
        )
    } else {
        watch.clone()
    };
    let slack = if slack_missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing {}", slack_missing.join(", ")))
    };
    let api = &s.gitlab_api;
    let catch_up = api.api().map(|_| ()).map_err(|missing| {
        format!(
            "{missing} (a token with the read_api scope). With them, pipelines that finished \
             while no webhook arrived (outage, network cut, disabled hook) are posted within \
             {} minutes, up to {} hours back",
            api.catch_up_interval.as_secs().div_ceil(60),
            api.catch_up_max_age.as_secs() / 3600
        )
    });
    let hook_check = match (&catch_up, &api.public_url) {
        (Err(_), _) => Err("needs catch-up's settings, and ARMBOT_PUBLIC_URL".to_string()),
        (Ok(()), None) => Err(
            "missing ARMBOT_PUBLIC_URL (the bot's public base URL, to find its own hook). With \
             it, a hook GitLab disables is reported once in the channel, its recovery in the \
             thread, and /arm status shows each project's hook"
                .to_string(),
        ),
        (Ok(()), Some(_)) => Ok(()),
    };
    vec![
        ("failure notices (POST /gitlab/webhook)", Ok(())),
        ("catch-up of missed pipelines (GitLab API)", catch_up),
        ("webhook health (GitLab disabling the hook)", hook_check),
        ("posting to Slack", posting),
        ("Slack commands, buttons and events", slack),
        ("/arm status", joined(fleet_missing)),
        ("/arm reap", joined(reap_missing)),
        ("fleet watch", watch),
        ("fleet watch auto-reap", auto_reap),
    ]
}

/// Problems beyond what loading already refused.
pub fn problems(s: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(dir) = &s.reap.machine_store
        && let Err(e) = MachineIndex::read(dir)
    {
        out.push(format!("[reap] machine_store: {}", e.user_message()));
    }
    out.extend(s.reap.problems(s.console_mode()));
    out.extend(s.slack.problems());
    out.extend(s.notify.problems(s.console_mode()));
    let reap_filter = s.reap.name_prefix.as_deref().is_some_and(|p| !p.is_empty())
        || s.reap.tags.iter().any(|t| !t.is_empty())
        || s.reap.machine_store.is_some();
    out.extend(s.watch.problems(s.console_mode(), reap_filter));
    out
}

/// Every setting, with secrets shown only as set or unset.
pub fn describe(s: &Settings) -> Vec<(String, String)> {
    let secret = |v: &Option<SecretString>| if v.is_some() { "set" } else { "unset" }.to_string();
    let set = |b: bool| if b { "set" } else { "unset" }.to_string();
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "unset".into());
    let zones = s.fleet.zones.join(", ");
    vec![
        ("listen".into(), s.listen.to_string()),
        (
            "metrics_listen".into(),
            s.metrics_listen
                .map_or_else(|| "unset (/metrics on listen)".into(), |a| a.to_string()),
        ),
        ("database_url".into(), s.database_url.to_string()),
        (
            "retention_days".into(),
            (s.retention.as_secs() / 86_400).to_string(),
        ),
        ("notify channel".into(), s.notify.channel.clone()),
        (
            "notify extra_branches".into(),
            s.notify.extra_branches.join(", "),
        ),
        (
            "notify stable_pattern".into(),
            s.notify.stable_pattern.to_string(),
        ),
        ("notify routes".into(), s.notify.routes.len().to_string()),
        (
            "notify users".into(),
            format!("{} mapped", s.notify.users.len()),
        ),
        (
            "GITLAB_WEBHOOK_TOKEN".into(),
            format!("{} token(s)", s.gitlab.tokens.len()),
        ),
        (
            "GITLAB_WEBHOOK_SIGNING_TOKEN".into(),
            set(s.gitlab.signing_key.is_some()),
        ),
        (
            "GITLAB_URL".into(),
            s.gitlab_api
                .url
                .as_ref()
                .map_or_else(|| "unset".into(), ToString::to_string),
        ),
        ("GITLAB_API_TOKEN".into(), secret(&s.gitlab_api.token)),
        (
            "ARMBOT_PUBLIC_URL".into(),
            s.gitlab_api
                .public_url
                .as_ref()
                .map_or_else(|| "unset".into(), ToString::to_string),
        ),
        (
            "gitlab catch_up_interval_secs".into(),
            s.gitlab_api.catch_up_interval.as_secs().to_string(),
        ),
        (
            "gitlab catch_up_max_age_hours".into(),
            (s.gitlab_api.catch_up_max_age.as_secs() / 3600).to_string(),
        ),
        ("SLACK_BOT_TOKEN".into(), secret(&s.slack.bot_token)),
        (
            "SLACK_SIGNING_SECRET".into(),
            secret(&s.slack.signing_secret),
        ),
        ("SLACK_API_URL".into(), s.slack.api_url.clone()),
        (
            "SLACK_TEAM_ID".into(),
            match &s.slack.team {
                TeamPolicy::BotToken => "the bot token's workspace (auth.test)".into(),
                TeamPolicy::Only(team) => team.clone(),
                TeamPolicy::Any => "any workspace".into(),
            },
        ),
        (
            "scw config file".into(),
            s.scaleway
                .config_file
                .clone()
                .unwrap_or_else(|| "none".into()),
        ),
        ("SCW_SECRET_KEY".into(), secret(&s.scaleway.secret_key)),
        (
            "SCW_API_URL".into(),
            s.scaleway
                .api_url
                .clone()
                .unwrap_or_else(|| DEFAULT_API_URL.into()),
        ),
        (
            "project".into(),
            opt(&s
                .fleet
                .project_id
                .clone()
                .or_else(|| s.scaleway.project_id.clone())),
        ),
        (
            "zones".into(),
            if zones.is_empty() {
                opt(&s.scaleway.default_zone)
            } else {
                zones
            },
        ),
        ("fleet name_prefix".into(), opt(&s.fleet.name_prefix)),
        ("fleet tags".into(), s.fleet.tags.join(", ")),
        (
            "runner_metrics_url".into(),
            set(s.fleet.runner_metrics_url.is_some()),
        ),
        (
            "SCW_DEFAULT_ORGANIZATION_ID".into(),
            opt(&s.scaleway.organization_id),
        ),
        ("watch enabled".into(), s.watch.enabled.to_string()),
        (
            "watch interval_secs".into(),
            s.watch.interval.as_secs().to_string(),
        ),
        (
            "watch channel".into(),
            if s.watch.channel.is_empty() {
                "unset".into()
            } else {
                s.watch.channel.clone()
            },
        ),
        ("watch auto_reap".into(), s.watch.auto_reap.to_string()),
        (
            "watch auto_reap_after_minutes".into(),
            if s.watch.auto_reap_after_minutes < s.reap.grace_minutes {
                format!(
                    "{} (acts after {}: [reap] grace_minutes is longer)",
                    s.watch.auto_reap_after_minutes, s.reap.grace_minutes
                )
            } else {
                s.watch.auto_reap_after_minutes.to_string()
            },
        ),
    ]
}
