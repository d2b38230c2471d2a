//! The `/arm` grammar: `help`, `status [zone…]`, `reap`, `faq [question]`.

use crate::slack::mrkdwn::unescape;
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArmCommand {
    Help,
    Status {
        zones: Vec<String>,
    },
    Reap,
    Faq {
        question: Option<String>,
    },
    /// Something we do not understand; answered with help.
    Unknown(String),
}

impl ArmCommand {
    /// The name used in metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Help => "help",
            Self::Status { .. } => "status",
            Self::Reap => "reap",
            Self::Faq { .. } => "faq",
            Self::Unknown(_) => "unknown",
        }
    }
}

/// `/arm help` as mrkdwn: one command a line. Placeholders are written `[zone…]`, since Slack
/// would read a bare `<zone>` as a link and show nothing of it.
pub const HELP: &str = "*`/arm` commands*\n\
• `/arm status [zone…]`: the Scaleway ARM builders, their states, and how much of the runner cap and quota they use\n\
• `/arm reap`: plan removing builders stuck shut down (nothing is deleted until an allowed person confirms)\n\
• `/arm faq [question]`: an answer from the team's ARM FAQ; without a question, the list of topics\n\
• `/arm help`: this list";

/// Under the help, in small print.
pub const HELP_NOTE: &str =
    "You can also mention the bot or send it a direct message with a question.";

pub fn parse(text: &str) -> ArmCommand {
    let text = unescape(text);
    let text = text.trim();
    let (head, rest) = match text.split_once(char::is_whitespace) {
        Some((h, r)) => (h, r.trim()),
        None => (text, ""),
    };
    match head.to_lowercase().as_str() {
        "" | "help" | "-h" | "--help" | "?" => ArmCommand::Help,
        "status" | "st" => ArmCommand::Status { zones: zones(rest) },
        "reap" if rest.is_empty() => ArmCommand::Reap,
        "faq" => ArmCommand::Faq {
            question: (!rest.is_empty())
                .then(|| rest.split_whitespace().collect::<Vec<_>>().join(" ")),
        },
        _ => ArmCommand::Unknown(text.to_string()),
    }
}

/// At most this many zones in one `/arm status`: Scaleway has about a dozen, each is one more
/// listing, and they travel in the "Share in channel" button's value.
pub const MAX_ZONES: usize = 12;

/// The zones of `fr-par-1, NL-AMS-1 fr-par-1`: lowercased, each once in the order first given,
/// the first [`MAX_ZONES`] of them. Not checked (see [`valid_zone`]).
pub fn zones(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for zone in text.split(|c: char| c.is_whitespace() || c == ',') {
        let zone = zone.to_lowercase();
        if out.len() == MAX_ZONES {
            break;
        }
        if !zone.is_empty() && !out.contains(&zone) {
            out.push(zone);
        }
    }
    out
}

/// A zone name as Scaleway spells them (`fr-par-1`).
pub fn valid_zone(zone: &str) -> bool {
    let parts: Vec<&str> = zone.split('-').collect();
    parts.len() == 3
        && parts[0].len() == 2
        && parts[1].len() == 3
        && parts[..2]
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_lowercase()))
        && !parts[2].is_empty()
        && parts[2].chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ArmCommand::*;

    #[test]
    fn table() {
        let z = |v: &[&str]| Status {
            zones: v.iter().map(|s| s.to_string()).collect(),
        };
        let q = |s: &str| Faq {
            question: Some(s.into()),
        };
        let cases: Vec<(&str, ArmCommand)> = vec![
            ("", Help),
            ("   ", Help),
            ("help", Help),
            ("HELP", Help),
            ("status", z(&[])),
            ("  Status   fr-par-1  ", z(&["fr-par-1"])),
            ("status fr-par-1 NL-AMS-1", z(&["fr-par-1", "nl-ams-1"])),
            ("status fr-par-1,fr-par-2", z(&["fr-par-1", "fr-par-2"])),
            (
                "status fr-par-1 FR-PAR-1, nl-ams-1 fr-par-1",
                z(&["fr-par-1", "nl-ams-1"]),
            ),
            ("reap", Reap),
            ("REAP ", Reap),
            ("reap now", Unknown("reap now".into())),
            ("faq", Faq { question: None }),
            ("faq   why   no cross-compile?", q("why no cross-compile?")),
            ("FAQ Raspberry Pi &amp; CE", q("Raspberry Pi & CE")),
            ("deploy prod", Unknown("deploy prod".into())),
            ("statusfr-par-1", Unknown("statusfr-par-1".into())),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), want, "input {input:?}");
        }
    }

    #[test]
    fn zones_are_named_once_and_at_most_a_dozen() {
        let many: Vec<String> = (1..=40).map(|i| format!("fr-par-{i}")).collect();
        let asked = format!("{} {}", "fr-par-1 ".repeat(500), many.join(" "));
        let got = zones(&asked);
        assert_eq!(got, many[..MAX_ZONES]);
        assert_eq!(zones(" , "), Vec::<String>::new());
    }

    #[test]
    fn zone_names() {
        assert!(valid_zone("fr-par-1") && valid_zone("it-mil-1") && valid_zone("pl-waw-3"));
        assert!(
            !valid_zone("fr-par")
                && !valid_zone("par1")
                && !valid_zone("fr-par-x")
                && !valid_zone("<!here>")
        );
    }
}
