//! How well the shipped FAQ answers questions worded the way people ask them in Slack, and how
//! the matcher behaves on markup, typos, generic words and arbitrary input.
//!
//! The questions were written as users type them (paraphrases, typos, one-word pings, long
//! chatty messages) before the matcher was tuned against them. Do not reword them to make the
//! matcher pass; improve the matcher or the knowledge base instead. `cargo test --test
//! faq_matching -- --nocapture` prints the rates of every set.

use std::sync::LazyLock;

use armbot::faq::{Answer, KnowledgeBase};
use proptest::prelude::*;

/// Built once: proptest asks hundreds of questions.
static BUILTIN: LazyLock<KnowledgeBase> = LazyLock::new(KnowledgeBase::builtin);

/// Questions the FAQ covers, with the id of the entry that should answer them.
const COVERED: &[(&str, &str)] = &[
    // Hardware provider
    ("who hosts our arm builders?", "hardware-provider"),
    ("which cloud are the ARM runners on", "hardware-provider"),
    (
        "are the arm machines on aws or scaleway?",
        "hardware-provider",
    ),
    (
        "what provider do we use for arm hardware",
        "hardware-provider",
    ),
    // Logging in
    ("how do I log into scaleway", "scaleway-login"),
    ("where are the creds for the scw account", "scaleway-login"),
    (
        "can I get access to the scaleway console?",
        "scaleway-login",
    ),
    (
        "which 1password vault has the scaleway login",
        "scaleway-login",
    ),
    // Teams
    ("which teams work on arm stuff", "arm-teams"),
    (
        "who's responsible for the ARM runner provider?",
        "arm-teams",
    ),
    (
        "someone on the forum is asking about arm support, who handles that?",
        "arm-teams",
    ),
    ("what does verify ci do for arm", "arm-teams"),
    // Failure notifications
    (
        "where do arm build failures get reported?",
        "failure-notifications",
    ),
    (
        "will I get pinged if my feature branch fails on arm",
        "failure-notifications",
    ),
    (
        "do failed pipelines on master show up in slack?",
        "failure-notifications",
    ),
    (
        "who gets notified when a tag build breaks",
        "failure-notifications",
    ),
    // Slow machines and timeouts
    ("arm jobs keep timing out, why", "slow-builds-timeouts"),
    ("why are the arm builds so slow", "slow-builds-timeouts"),
    // The docker-machine driver
    (
        "is the scaleway docker machine driver buggy?",
        "docker-machine-driver",
    ),
    (
        "docker-machine rm fails with server should be running",
        "docker-machine-driver",
    ),
    // Machines shutting down by themselves
    (
        "arm machines randomly shut themselves down, is that known?",
        "machines-shut-down",
    ),
    (
        "one of the builders just powered off on its own",
        "machines-shut-down",
    ),
    // Shut-down machines and the runner cap
    (
        "do stopped machines still count towards the runner limit?",
        "shutdown-counts-against-cap",
    ),
    (
        "dead builders are eating up our cap, what do I do",
        "shutdown-counts-against-cap",
    ),
    // Pending builds
    ("why are my arm builds pending", "pending-builds"),
    (
        "my job has been stuck in pending for an hour on dev.gitlab.org",
        "pending-builds",
    ),
    (
        "pipelines queued forever, no arm runner picks them up",
        "pending-builds",
    ),
    (
        "nothing is running, jobs just sit waiting for a runner",
        "pending-builds",
    ),
    // /arm status
    (
        "how can I see how many arm builders are up right now",
        "fleet-status",
    ),
    (
        "is there a way to check the state of the scaleway machines from slack",
        "fleet-status",
    ),
    // /arm reap
    ("what does /arm reap do", "reap-command"),
    ("how do I clean up the broken arm machines", "reap-command"),
    ("is it safe to run arm reap", "reap-command"),
    // Cross-compiling
    (
        "why don't we cross-compile armhf on arm64?",
        "cross-compiling",
    ),
    (
        "wouldn't it be faster to build the 32 bit packages on 64 bit machines",
        "cross-compiling",
    ),
    (
        "cross compiling arm32 — has anyone tried?",
        "cross-compiling",
    ),
    // Provisioning
    ("how are arm builders provisioned", "provisioning"),
    (
        "why are there always builders running even when there are no jobs",
        "provisioning",
    ),
    (
        "if a builder dies does a new one get created automatically",
        "provisioning",
    ),
    // Quota
    ("where can I see our scaleway quota usage", "quota-usage"),
    ("how close are we to the scw quota", "quota-usage"),
    // Where the cap is set
    (
        "where is the max number of arm runners configured",
        "runner-cap-setting",
    ),
    ("how do I raise the runner cap", "runner-cap-setting"),
    (
        "which chef role sets the build runner limit",
        "runner-cap-setting",
    ),
    // Raspberry Pi
    ("do we ship EE packages for raspberry pi?", "raspberry-pi"),
    ("why is there only a CE package for rpi", "raspberry-pi"),
    (
        "can I run gitlab in production on a raspberry pi",
        "raspberry-pi",
    ),
    // The handbook page
    (
        "where's the handbook page about the arm infrastructure",
        "arm-handbook",
    ),
    (
        "is there any documentation on the arm build setup?",
        "arm-handbook",
    ),
    // Typos
    ("why are my bulds pendng", "pending-builds"),
    ("scalway quota", "quota-usage"),
    ("how do i acess scaleway", "scaleway-login"),
    ("cross compling arm32", "cross-compiling"),
    ("raspbery pi packages", "raspberry-pi"),
    ("provisoning of arm builders", "provisioning"),
    // Short forms
    ("arm quota?", "quota-usage"),
    ("rpi ee?", "raspberry-pi"),
    ("arm notifications", "failure-notifications"),
    ("arm timeouts", "slow-builds-timeouts"),
    // Long forms and Slack markup
    (
        "Hey team, I noticed that a bunch of my ARM jobs on dev have been sitting in pending for \
         like 2 hours now and nothing is picking them up. Is something wrong with the Scaleway \
         runners? what should I do?",
        "pending-builds",
    ),
    (
        "<@U024BE7LH> where do build failures for stable branches get posted?",
        "failure-notifications",
    ),
    (
        "quick q: if I push a feature branch and the arm job fails, does anything get posted in \
         the distribution channel or just email to me?",
        "failure-notifications",
    ),
    (
        "<@U024BE7LH> see <https://dev.gitlab.org/gitlab/omnibus-gitlab/-/jobs/123|this job>: \
         the builder it ran on just turned off in the middle of the build :thinking_face:",
        "machines-shut-down",
    ),
];

/// Questions the FAQ does not cover: the matcher must say it does not know.
const NOT_COVERED: &[&str] = &[
    "how do I request a laptop",
    "what's the lunch menu",
    "how to rebase my branch",
    "who is on call for gitaly",
    "where are the x86 runners' logs",
    "how do I reset my 2fa",
    "when is the next release",
    "how do I get a gitlab.com license for a customer",
    "what's the weather in amsterdam",
    "can someone review my merge request",
    "how do I install gitlab on ubuntu",
    "where is the expense report form",
    "how do I set up my dev environment with gdk",
    "why is the postgres upgrade failing on omnibus",
    "what's the status of the 17.0 release",
    "how many vacation days do I have",
    "who approves my pto",
    "how do I rotate the aws access keys",
    "where do I find the gcp billing dashboard",
    "can you help me write a blog post",
    "does the kubernetes agent support arm?",
    "how do I build the docs site locally",
];

/// Written after the thresholds were calibrated on the two lists above, to see how the matcher
/// does on questions it was not fitted to. First run: 70% hits, 91% unknown. The matcher was
/// then improved in general ways (see `HELD_OUT_2_COVERED`), so these are no longer unseen.
const HELD_OUT_COVERED: &[(&str, &str)] = &[
    (
        "what company do we get the arm vms from",
        "hardware-provider",
    ),
    ("is scaleway still our arm provider?", "hardware-provider"),
    (
        "I need to log in to the scaleway dashboard, where do I find the credentials?",
        "scaleway-login",
    ),
    (
        "who has access to the distribution-be account",
        "scaleway-login",
    ),
    (
        "which team should I ask about arm runner problems",
        "arm-teams",
    ),
    ("does the verify team help with arm packages?", "arm-teams"),
    (
        "my MR pipeline failed on arm, why didn't anyone get pinged in slack",
        "failure-notifications",
    ),
    (
        "where does armbot post broken master builds",
        "failure-notifications",
    ),
    (
        "are failed tag pipelines announced somewhere?",
        "failure-notifications",
    ),
    (
        "the arm build timed out after 3 hours",
        "slow-builds-timeouts",
    ),
    (
        "why is everything on the arm runners so sluggish",
        "slow-builds-timeouts",
    ),
    (
        "known problems with docker machine on scaleway?",
        "docker-machine-driver",
    ),
    (
        "runner manager can't remove scaleway servers",
        "docker-machine-driver",
    ),
    (
        "a scaleway instance powered itself off, is this expected?",
        "machines-shut-down",
    ),
    (
        "arm runner limit is full of shut down machines",
        "shutdown-counts-against-cap",
    ),
    ("builds have been queued on dev for ages", "pending-builds"),
    ("nothing picks up my arm job", "pending-builds"),
    (
        "pending arm pipelines, what's the procedure?",
        "pending-builds",
    ),
    ("what's the current state of the arm fleet", "fleet-status"),
    ("show me the arm builders", "fleet-status"),
    ("how do I delete the zombie arm machines", "reap-command"),
    ("what happens when I run /arm reap", "reap-command"),
    ("why not cross compile for armv7", "cross-compiling"),
    ("do we build arm32 on aarch64 hosts?", "cross-compiling"),
    (
        "are arm builders created on demand or kept running?",
        "provisioning",
    ),
    (
        "where do I check how much scaleway quota is left",
        "quota-usage",
    ),
    (
        "who sets the max runners for arm, and where?",
        "runner-cap-setting",
    ),
    ("is gitlab ee available on the pi", "raspberry-pi"),
    (
        "recommended to run gitlab on raspberry pi in prod?",
        "raspberry-pi",
    ),
    ("handbook link for arm", "arm-handbook"),
];

/// Held-out questions the FAQ does not cover (see `HELD_OUT_COVERED`).
const HELD_OUT_NOT_COVERED: &[&str] = &[
    "how do I get access to the aws console",
    "who maintains the helm chart",
    "when is the next team offsite",
    "how do I add a new runner tag to my project",
    "where can I find the omnibus nightly packages",
    "what's the best way to learn rust",
    "can I expense a raspberry pi for home",
    "my laptop battery is dying",
    "who owns the container registry",
    "how do I update my slack status",
    "why is the gitlab.com deploy slow today",
];

/// A second held-out set, written after the changes prompted by the first one. First run: 55%
/// hits, 92% unknown: unknown words counted too heavily. Fixing that (and more filler words,
/// phrase and stemming fixes, the off-topic rule) was checked against all sets.
const HELD_OUT_2_COVERED: &[(&str, &str)] = &[
    (
        "hey, which provider runs our arm64 boxes?",
        "hardware-provider",
    ),
    ("is our arm stuff hosted on gcp?", "hardware-provider"),
    (
        "how do I sign into the scaleway web console",
        "scaleway-login",
    ),
    ("where's the distribution-be login stored", "scaleway-login"),
    (
        "who do I talk to about arm questions from community users",
        "arm-teams",
    ),
    ("what's the community advocates' role for arm", "arm-teams"),
    (
        "why wasn't the broken 16-5-stable build posted in our channel",
        "failure-notifications",
    ),
    (
        "do I get an e-mail when my branch pipeline fails on arm",
        "failure-notifications",
    ),
    (
        "arm test jobs time out all the time",
        "slow-builds-timeouts",
    ),
    ("is the arm slowness a known thing?", "slow-builds-timeouts"),
    (
        "the scaleway driver for docker machine keeps failing",
        "docker-machine-driver",
    ),
    (
        "what's wrong with docker-machine-driver-scaleway",
        "docker-machine-driver",
    ),
    (
        "builder went offline by itself mid pipeline",
        "machines-shut-down",
    ),
    (
        "why do scaleway vms keep shutting down",
        "machines-shut-down",
    ),
    (
        "stopped vms still use runner slots?",
        "shutdown-counts-against-cap",
    ),
    ("ci is stuck, arm jobs not starting", "pending-builds"),
    (
        "jobs pending on dev.gitlab.org, what should I do",
        "pending-builds",
    ),
    (
        "how do I get an overview of the arm machines",
        "fleet-status",
    ),
    ("what does the /arm status command tell me", "fleet-status"),
    (
        "can armbot clean up the dead runners for me?",
        "reap-command",
    ),
    ("what does reaping do exactly", "reap-command"),
    (
        "can't we just cross-compile to save time?",
        "cross-compiling",
    ),
    (
        "why are 32-bit arm packages built natively",
        "cross-compiling",
    ),
    (
        "does ci replace a builder automatically when it shuts down?",
        "provisioning",
    ),
    ("why keep arm machines running all the time", "provisioning"),
    ("scaleway quotas - where do I see them?", "quota-usage"),
    (
        "where is build-runners-gitlab-org defined",
        "runner-cap-setting",
    ),
    ("can I bump the arm runner cap?", "runner-cap-setting"),
    ("raspberry pi enterprise edition?", "raspberry-pi"),
    ("why no ee for rpi", "raspberry-pi"),
    ("where are the arm docs", "arm-handbook"),
];

/// Second held-out set of questions the FAQ does not cover.
const HELD_OUT_2_NOT_COVERED: &[&str] = &[
    "how do I join the distribution team slack channel",
    "who is the distribution engineering manager",
    "can I get a scaleway account for my side project",
    "what's the process for a security release",
    "how do I enable arm64 for my own gitlab runner",
    "where is the on-call schedule",
    "how do I cancel a running pipeline",
    "what time is the team meeting",
    "is there a mac m1 build of gitlab",
    "how do I clean up my docker images locally",
    "why is my laptop so slow",
    "who do I ask about the gitlab.com quota for ci minutes",
];

/// A third held-out set, written after the matcher's design was final and never tuned against:
/// the fairest estimate for new questions. First run: 78.6% hits, 91.7% unknown.
const HELD_OUT_3_COVERED: &[(&str, &str)] = &[
    ("who's our arm hosting vendor", "hardware-provider"),
    ("scaleway login details?", "scaleway-login"),
    (
        "which vault has the distribution-be credentials",
        "scaleway-login",
    ),
    ("is verify responsible for arm runners?", "arm-teams"),
    ("who replies to arm questions on the forum", "arm-teams"),
    (
        "where will I see a failed master pipeline for arm",
        "failure-notifications",
    ),
    (
        "does armbot notify about feature branch failures?",
        "failure-notifications",
    ),
    ("why do arm pipelines take so long", "slow-builds-timeouts"),
    ("arm job hit the timeout again", "slow-builds-timeouts"),
    (
        "docker machine driver issues on scaleway",
        "docker-machine-driver",
    ),
    (
        "getting 'server should be running' when removing a machine",
        "docker-machine-driver",
    ),
    (
        "scaleway builder shut down in the middle of my job",
        "machines-shut-down",
    ),
    (
        "are shut down instances still counted toward the cap",
        "shutdown-counts-against-cap",
    ),
    (
        "runner slots full of dead vms",
        "shutdown-counts-against-cap",
    ),
    ("arm builds stuck in pending state", "pending-builds"),
    (
        "my pipeline is waiting for an arm runner for ages",
        "pending-builds",
    ),
    ("how do I check arm fleet status", "fleet-status"),
    ("list the stopped scaleway machines", "fleet-status"),
    (
        "does /arm reap ask before deleting anything?",
        "reap-command",
    ),
    (
        "how do I free runner slots taken by dead machines",
        "reap-command",
    ),
    (
        "is cross compiling 32 bit arm on 64 bit hardware possible",
        "cross-compiling",
    ),
    (
        "why are builders always on instead of autoscaling",
        "provisioning",
    ),
    (
        "how long does an arm builder take to spin up",
        "provisioning",
    ),
    ("how much scaleway quota do we have left", "quota-usage"),
    (
        "which cookbook has the arm runner limit",
        "runner-cap-setting",
    ),
    ("is there a raspberry pi EE package", "raspberry-pi"),
    (
        "why isn't raspberry pi recommended for production",
        "raspberry-pi",
    ),
    ("link to the arm handbook page pls", "arm-handbook"),
];

/// Third held-out set of questions the FAQ does not cover.
const HELD_OUT_3_NOT_COVERED: &[&str] = &[
    "how do I get a new yubikey",
    "who reviews omnibus merge requests this week",
    "what's the arm64 support status for gitlab pages",
    "how do I run the qa tests against my branch",
    "where is the terraform state for the runners",
    "how do I renew my ssl certificate",
    "who can approve my access request for production",
    "is there a docker image for gitlab on arm",
    "when does the arm64 package for 17.1 ship",
    "how do I restart a stuck sidekiq job",
    "what are the team's OKRs this quarter",
    "where do I report a security vulnerability",
];

struct Rates {
    hit: f64,
    unknown: f64,
}

/// Hit rate over `covered` and "unknown" rate over `not_covered`, printed with every failure.
fn rates(kb: &KnowledgeBase, name: &str, covered: &[(&str, &str)], not_covered: &[&str]) -> Rates {
    let mut failures = Vec::new();
    let mut hits = 0;
    for &(question, expected) in covered {
        match kb.answer(question) {
            Answer::Hit { entry, .. } if entry.id == expected => hits += 1,
            Answer::Hit { entry, score } => failures.push(format!(
                "{question:?}: expected {expected}, answered {} ({score:.2})",
                entry.id
            )),
            Answer::Unknown { .. } => {
                failures.push(format!("{question:?}: expected {expected}, got unknown"))
            }
        }
    }
    let mut unknowns = 0;
    for &question in not_covered {
        match kb.answer(question) {
            Answer::Unknown { .. } => unknowns += 1,
            Answer::Hit { entry, score } => failures.push(format!(
                "{question:?}: not covered, answered {} ({score:.2})",
                entry.id
            )),
        }
    }
    let rates = Rates {
        hit: percent(hits, covered.len()),
        unknown: percent(unknowns, not_covered.len()),
    };
    println!(
        "{name}: hit rate {:.1}% ({hits}/{}), unknown rate {:.1}% ({unknowns}/{})",
        rates.hit,
        covered.len(),
        rates.unknown,
        not_covered.len()
    );
    for failure in failures {
        println!("    {failure}");
    }
    rates
}

fn percent(good: usize, total: usize) -> f64 {
    // Counts here are tiny, so the conversions are exact.
    100.0 * good as f64 / total as f64
}

#[test]
fn hit_and_unknown_rates_on_the_main_question_set() {
    assert!(COVERED.len() >= 40 && NOT_COVERED.len() >= 15);
    let rates = rates(&KnowledgeBase::builtin(), "main set", COVERED, NOT_COVERED);
    assert!(rates.hit >= 90.0, "hit rate {:.1}% is below 90%", rates.hit);
    assert!(
        rates.unknown >= 90.0,
        "unknown rate {:.1}% is below 90%",
        rates.unknown
    );
}

/// The held-out sets measure generalisation, so their floors sit below the main set's; they
/// catch a change that helps the main set by hurting new questions.
#[test]
fn hit_and_unknown_rates_on_held_out_questions() {
    let kb = KnowledgeBase::builtin();
    let sets = [
        ("held-out set 1", HELD_OUT_COVERED, HELD_OUT_NOT_COVERED),
        ("held-out set 2", HELD_OUT_2_COVERED, HELD_OUT_2_NOT_COVERED),
        ("held-out set 3", HELD_OUT_3_COVERED, HELD_OUT_3_NOT_COVERED),
    ];
    for (name, covered, not_covered) in sets {
        let rates = rates(&kb, name, covered, not_covered);
        assert!(
            rates.hit >= 75.0,
            "{name}: hit rate {:.1}% is below 75%",
            rates.hit
        );
        assert!(
            rates.unknown >= 90.0,
            "{name}: unknown rate {:.1}% is below 90%",
            rates.unknown
        );
    }
}

#[test]
fn generic_words_alone_get_no_answer() {
    let kb = KnowledgeBase::builtin();
    for question in [
        "",
        "?",
        "how",
        "hi",
        "thanks!",
        "arm",
        "build",
        "machine",
        "runner",
        "arm builds",
        "how do I build it",
        "the machine",
        "help",
        "what is this",
        "scaleway",
    ] {
        assert!(
            matches!(kb.answer(question), Answer::Unknown { .. }),
            "{question:?}"
        );
    }
}

#[test]
fn unknown_answers_name_the_closest_topics_best_first() {
    let kb = KnowledgeBase::builtin();
    let closest = |question: &str| match kb.answer(question) {
        Answer::Unknown { closest } => closest.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        hit => panic!("{question:?}: {hit:?}"),
    };
    assert_eq!(
        closest("how do I rotate the aws access keys"),
        ["hardware-provider", "scaleway-login", "quota-usage"]
    );
    // Fewer when fewer entries share a word with the question; none for small talk.
    assert_eq!(
        closest("can I expense a raspberry pi for home"),
        ["raspberry-pi"]
    );
    assert!(closest("what's the lunch menu").is_empty());
    assert!(closest("").is_empty());
    for &question in NOT_COVERED {
        let ids = closest(question);
        assert!(ids.len() <= armbot::faq::CLOSEST, "{question:?}");
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{question:?}: {ids:?}");
    }
}

#[test]
fn slack_markup_does_not_change_the_answer() {
    let kb = KnowledgeBase::builtin();
    let plain = kb.answer("why are my arm builds pending");
    let marked = kb.answer(
        "<@U024BE7LH> why are my <https://dev.gitlab.org/x|arm builds> pending :sweat_smile: <!here>",
    );
    assert!(matches!(plain, Answer::Hit { entry, .. } if entry.id == "pending-builds"));
    assert_eq!(plain, marked);
}

#[test]
fn typo_matches_count_less_than_exact_ones() {
    let kb = KnowledgeBase::builtin();
    let score = |question: &str| match kb.answer(question) {
        Answer::Hit { entry, score } if entry.id == "quota-usage" => score,
        other => panic!("{question:?}: {other:?}"),
    };
    assert!(score("scalway quota usage") < score("scaleway quota usage"));
    // Short words are not corrected: "quot" is not "quota".
    assert!(matches!(kb.answer("quot"), Answer::Unknown { .. }));
}

#[test]
fn scores_are_confidences_between_zero_and_one() {
    let kb = KnowledgeBase::builtin();
    for &(question, _) in COVERED {
        if let Answer::Hit { score, .. } = kb.answer(question) {
            assert!((0.0..=1.0).contains(&score), "{question:?}: {score}");
        }
    }
}

#[test]
fn synonyms_from_the_file_are_applied_to_questions_and_entries() {
    let kb = KnowledgeBase::from_toml_str(
        r#"
        [[entry]]
        id = "pi"
        title = "Raspberry Pi packages"
        questions = ["Which packages are built for the Raspberry Pi?", "Pi builds", "Pi packages"]
        answer = "Community Edition only."
        link = "https://example.com/pi"

        [[entry]]
        id = "cross"
        title = "Cross-compiling"
        questions = ["Why not cross-compile?", "Cross compiling", "Cross-compile arm32"]
        answer = "It was not worth it."
        link = "https://example.com/cross"

        [synonyms]
        "raspberry pi" = ["rpi"]
        "cross-compile" = ["x-compile"]
        "#,
    )
    .expect("valid knowledge base");
    let id = |question: &str| match kb.answer(question) {
        Answer::Hit { entry, .. } => entry.id.as_str(),
        Answer::Unknown { .. } => "unknown",
    };
    assert_eq!(id("rpi packages?"), "pi");
    assert_eq!(id("why don't we x-compile"), "cross");
}

proptest! {
    #[test]
    fn answer_never_panics(question in any::<String>()) {
        let _ = BUILTIN.answer(&question);
    }

    #[test]
    fn answer_never_panics_on_slack_like_text(
        question in r"[<>|@#!:&;a-zA-Z0-9 _\-'’.]{0,200}",
    ) {
        let _ = BUILTIN.answer(&question);
    }
}
