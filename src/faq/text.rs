//! Text analysis shared by the knowledge base and the questions, so that both sides are
//! normalised the same way: Slack markup removed, lower-cased, split into words, lightly stemmed,
//! synonyms folded into one canonical term, stop words dropped.

use std::collections::HashMap;

/// One word of the input, before synonyms and stop words are applied.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Word {
    /// Lower-cased, apostrophes removed: what typo correction compares.
    pub raw: String,
    /// `stem(raw)`, or the corrected stem after typo correction.
    pub stem: String,
    /// Set when typo correction replaced the stem: such matches count less.
    pub fuzzy: bool,
}

/// A term that goes into the index or the query.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Term {
    pub text: String,
    pub fuzzy: bool,
}

/// Removes Slack markup that would otherwise become noise words: user, channel and broadcast
/// mentions vanish, `<url|label>` keeps only its label, a bare `<url>` vanishes, `:emoji:` codes
/// and the `&amp;`/`&lt;`/`&gt;` escapes Slack puts in message text are dropped.
pub(super) fn strip_slack_markup(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '<'
            && let Some(len) = chars[i + 1..].iter().position(|&c| c == '>')
        {
            let inner = &chars[i + 1..i + 1 + len];
            if let Some(bar) = inner.iter().position(|&c| c == '|') {
                let is_link = !matches!(inner.first(), Some('@' | '#' | '!'));
                if is_link {
                    out.extend(&inner[bar + 1..]);
                }
            }
            out.push(' ');
            i += len + 2;
            continue;
        }
        if c == '&' {
            let rest: String = chars[i..].iter().take(5).collect();
            if let Some(entity) = ["&amp;", "&lt;", "&gt;"]
                .iter()
                .find(|entity| rest.starts_with(*entity))
            {
                out.push(' ');
                i += entity.len();
                continue;
            }
        }
        if c == ':'
            && let Some(len) = emoji_code_len(&chars[i + 1..])
        {
            out.push(' ');
            i += len + 2;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Length of the emoji name if `rest` starts with `name:` (Slack's `:name:` form, after the first
/// colon), so that "error: server should be running:" is not mistaken for one.
fn emoji_code_len(rest: &[char]) -> Option<usize> {
    let len = rest
        .iter()
        .take_while(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '+' | '-')
        })
        .count();
    (len > 0 && rest.get(len) == Some(&':')).then_some(len)
}

/// Splits text into lower-cased words. Apostrophes join ("don't" is "dont", "runners'" is
/// "runners") and everything else that is not a letter or digit separates.
pub(super) fn words(text: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            current.extend(c.to_lowercase());
        } else if matches!(c, '\'' | '\u{2019}' | '\u{2018}') {
            // Part of a contraction or possessive: keep the word together.
        } else if !current.is_empty() {
            words.push(word(std::mem::take(&mut current)));
        }
    }
    if !current.is_empty() {
        words.push(word(current));
    }
    words
}

fn word(raw: String) -> Word {
    Word {
        stem: stem(&raw),
        raw,
        fuzzy: false,
    }
}

/// A light suffix-stripping stemmer: plurals, -ing and -ed go, and a final -e goes so that
/// "compile", "compiled" and "compiling" meet on "compil". It only has to be consistent, since
/// documents and questions go through it alike. Words with digits (arm64, x86) or non-ASCII
/// letters are left alone.
pub(super) fn stem(word: &str) -> String {
    if !word.bytes().all(|b| b.is_ascii_lowercase()) {
        return word.to_owned();
    }
    if word.len() <= 3 {
        // Plurals of abbreviations: "vms", "ips"; not "bus" or "cis".
        return match word.as_bytes() {
            [_, second, b's'] if !matches!(second, b's' | b'u' | b'i') => word[..2].to_owned(),
            _ => word.to_owned(),
        };
    }
    for suffix in ["ies", "ied"] {
        if let Some(base) = word.strip_suffix(suffix) {
            // "dies"/"died" -> "die", but "entries" -> "entry".
            return if base.len() >= 2 {
                format!("{base}y")
            } else {
                format!("{base}ie")
            };
        }
    }
    // Adverbs: "automatically" -> "automatic", "arbitrarily" -> "arbitrary", "randomly" ->
    // "random". Short bases keep their -ly ("apply", "early").
    if let Some(base) = word.strip_suffix("ically") {
        return format!("{base}ic");
    }
    if let Some(base) = word.strip_suffix("ily")
        && base.len() >= 3
    {
        return format!("{base}y");
    }
    if let Some(base) = word.strip_suffix("ly")
        && base.len() >= 5
    {
        return base.to_owned();
    }
    // Nouns made from verbs and adjectives: "replacement", "slowness".
    for suffix in ["ment", "ness"] {
        if let Some(base) = word.strip_suffix(suffix)
            && base.len() >= 4
        {
            return stem(base);
        }
    }
    let mut stem = word;
    if let Some(base) = stem.strip_suffix("sses") {
        stem = &word[..base.len() + 2];
    } else if stem.ends_with('s')
        && !(stem.ends_with("ss") || stem.ends_with("us") || stem.ends_with("is"))
    {
        stem = &stem[..stem.len() - 1];
    }
    let mut undouble = false;
    if let Some(base) = stem.strip_suffix("ing")
        && base.len() >= 3
        && has_vowel(base)
    {
        stem = base;
        undouble = true;
    } else if let Some(base) = stem.strip_suffix("ed")
        && !stem.ends_with("eed")
        && base.len() >= 3
        && has_vowel(base)
    {
        stem = base;
        undouble = true;
    }
    let bytes = stem.as_bytes();
    if undouble
        && let [.., a, b] = bytes
        && a == b
        && !matches!(a, b'l' | b's' | b'z')
        && !is_vowel(*a)
    {
        stem = &stem[..stem.len() - 1];
    }
    if let Some(base) = stem.strip_suffix('e')
        && base.len() >= 3
    {
        stem = base;
    }
    stem.to_owned()
}

fn is_vowel(b: u8) -> bool {
    matches!(b, b'a' | b'e' | b'i' | b'o' | b'u' | b'y')
}

fn has_vowel(s: &str) -> bool {
    s.bytes().any(is_vowel)
}

/// Words that say nothing about the topic of a question: function words, question words, chat
/// filler and time expressions ("for 2 hours now", "all the time"). Removing them keeps a chatty question from
/// looking unlike the FAQ's plain wording, and keeps them from matching anything. Sorted, for
/// binary search; a unit test checks the order.
const STOP_WORDS: &[&str] = &[
    "a",
    "able",
    "about",
    "actually",
    "after",
    "again",
    "ago",
    "all",
    "already",
    "also",
    "am",
    "an",
    "and",
    "any",
    "anybody",
    "anymore",
    "anyone",
    "anything",
    "anyway",
    "anywhere",
    "are",
    "arent",
    "around",
    "as",
    "ask",
    "asking",
    "at",
    "basically",
    "be",
    "because",
    "been",
    "before",
    "being",
    "bit",
    "btw",
    "but",
    "by",
    "can",
    "cannot",
    "cant",
    "check",
    "checking",
    "could",
    "couldnt",
    "day",
    "days",
    "did",
    "didnt",
    "do",
    "does",
    "doesnt",
    "doing",
    "done",
    "dont",
    "down",
    "each",
    "eg",
    "either",
    "else",
    "even",
    "ever",
    "every",
    "everybody",
    "everyone",
    "everything",
    "everywhere",
    "exactly",
    "expect",
    "expected",
    "few",
    "find",
    "folks",
    "for",
    "from",
    "fyi",
    "get",
    "gets",
    "getting",
    "go",
    "goes",
    "going",
    "got",
    "guess",
    "guys",
    "had",
    "happen",
    "happened",
    "happening",
    "happens",
    "has",
    "hasnt",
    "have",
    "havent",
    "having",
    "he",
    "hello",
    "help",
    "her",
    "here",
    "herself",
    "hey",
    "hi",
    "him",
    "himself",
    "his",
    "hmm",
    "hour",
    "hours",
    "how",
    "hows",
    "i",
    "id",
    "idea",
    "ie",
    "if",
    "im",
    "in",
    "into",
    "is",
    "isnt",
    "it",
    "its",
    "itself",
    "ive",
    "just",
    "kind",
    "kinda",
    "know",
    "known",
    "last",
    "let",
    "lets",
    "like",
    "literally",
    "look",
    "looking",
    "lot",
    "lots",
    "many",
    "may",
    "maybe",
    "me",
    "mean",
    "might",
    "minute",
    "minutes",
    "more",
    "morning",
    "most",
    "much",
    "must",
    "my",
    "myself",
    "need",
    "needs",
    "no",
    "normal",
    "not",
    "nothing",
    "now",
    "of",
    "off",
    "ok",
    "okay",
    "on",
    "one",
    "ones",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "please",
    "pls",
    "plz",
    "probably",
    "q",
    "question",
    "quick",
    "really",
    "right",
    "said",
    "same",
    "say",
    "says",
    "see",
    "seem",
    "seems",
    "should",
    "show",
    "shows",
    "simply",
    "since",
    "so",
    "some",
    "somehow",
    "someone",
    "something",
    "somewhere",
    "sort",
    "still",
    "stuff",
    "such",
    "sure",
    "take",
    "takes",
    "taking",
    "talk",
    "tell",
    "than",
    "thank",
    "thanks",
    "that",
    "thats",
    "the",
    "their",
    "them",
    "themselves",
    "then",
    "there",
    "theres",
    "these",
    "they",
    "thing",
    "things",
    "think",
    "this",
    "those",
    "thx",
    "time",
    "times",
    "to",
    "today",
    "too",
    "took",
    "totally",
    "try",
    "trying",
    "u",
    "up",
    "us",
    "use",
    "used",
    "uses",
    "using",
    "usual",
    "usually",
    "very",
    "via",
    "wanna",
    "want",
    "was",
    "wasnt",
    "way",
    "we",
    "week",
    "were",
    "weve",
    "what",
    "whats",
    "when",
    "where",
    "wheres",
    "which",
    "while",
    "who",
    "whole",
    "whom",
    "whos",
    "why",
    "will",
    "with",
    "without",
    "wonder",
    "wondering",
    "wont",
    "would",
    "wouldnt",
    "yeah",
    "yes",
    "yesterday",
    "yet",
    "you",
    "your",
    "youre",
    "yours",
    "yourself",
];

pub(super) fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

pub(super) fn stop_words() -> &'static [&'static str] {
    STOP_WORDS
}

/// Synonym groups compiled for matching: each phrase (as stems) maps to its group's canonical
/// term. Multi-word phrases ("raspberry pi") become a single term, so they weigh as one concept.
#[derive(Debug, Clone, Default)]
pub(super) struct Synonyms {
    /// First stem of a phrase -> (phrase stems, canonical term), longest phrase first.
    by_first: HashMap<String, Vec<(Vec<String>, String)>>,
}

/// Two different groups claim the same phrase.
#[derive(Debug)]
pub(super) struct SynonymConflict {
    pub phrase: String,
    pub first: String,
    pub second: String,
}

impl Synonyms {
    /// `groups`: (canonical word or phrase, other ways to say it).
    pub(super) fn new<'a>(
        groups: impl IntoIterator<Item = (&'a str, &'a [String])>,
    ) -> Result<Self, SynonymConflict> {
        let mut owner: HashMap<Vec<String>, (String, &'a str)> = HashMap::new();
        let mut synonyms = Self::default();
        for (canonical, others) in groups {
            let canonical_stems = stems(canonical);
            let term = canonical_stems.join("_");
            let phrases = std::iter::once(canonical).chain(others.iter().map(String::as_str));
            for phrase in phrases {
                let key = stems(phrase);
                if key.is_empty() {
                    continue;
                }
                match owner.get(&key) {
                    Some((other_term, other_group)) if *other_term != term => {
                        return Err(SynonymConflict {
                            phrase: phrase.to_owned(),
                            first: (*other_group).to_owned(),
                            second: canonical.to_owned(),
                        });
                    }
                    Some(_) => continue,
                    None => {}
                }
                owner.insert(key.clone(), (term.clone(), canonical));
                let first = key[0].clone();
                synonyms
                    .by_first
                    .entry(first)
                    .or_default()
                    .push((key, term.clone()));
            }
        }
        for phrases in synonyms.by_first.values_mut() {
            phrases.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        }
        Ok(synonyms)
    }

    /// Every stem that appears in some phrase: these are known words for typo correction.
    pub(super) fn phrase_words(&self) -> impl Iterator<Item = &str> {
        self.by_first
            .values()
            .flatten()
            .flat_map(|(stems, _)| stems.iter().map(String::as_str))
    }

    /// Folds synonym phrases (longest first) into canonical terms and drops stop words and
    /// one-letter leftovers. Stop words are dropped only afterwards, since phrases may contain
    /// them ("log in", "on its own").
    pub(super) fn terms(&self, words: &[Word]) -> Vec<Term> {
        let mut terms = Vec::with_capacity(words.len());
        let mut i = 0;
        while i < words.len() {
            if let Some((len, canonical)) = self.phrase_at(&words[i..]) {
                terms.push(Term {
                    text: canonical.to_owned(),
                    fuzzy: words[i..i + len].iter().any(|w| w.fuzzy),
                });
                i += len;
                continue;
            }
            let word = &words[i];
            // The stem is checked too, so "shows" and "checking" go like "show" and "check".
            let stop = is_stop_word(&word.raw) || is_stop_word(&word.stem);
            if !stop && word.stem.chars().count() >= 2 {
                terms.push(Term {
                    text: word.stem.clone(),
                    fuzzy: word.fuzzy,
                });
            }
            i += 1;
        }
        terms
    }

    /// The longest phrase starting at `words[0]`, as (words consumed, canonical term). One stop
    /// word may sit inside a phrase, as in particle verbs: "turn it off", "shut themselves
    /// down", "clean them up".
    fn phrase_at(&self, words: &[Word]) -> Option<(usize, &str)> {
        let first = words.first()?;
        self.by_first
            .get(&first.stem)?
            .iter()
            .find_map(|(phrase, canonical)| {
                let mut used = 1;
                let mut skipped = false;
                for stem in &phrase[1..] {
                    let mut word = words.get(used)?;
                    if word.stem != *stem && !skipped && is_stop_word(&word.raw) {
                        skipped = true;
                        used += 1;
                        word = words.get(used)?;
                    }
                    if word.stem != *stem {
                        return None;
                    }
                    used += 1;
                }
                Some((used, canonical.as_str()))
            })
    }
}

fn stems(text: &str) -> Vec<String> {
    words(text).into_iter().map(|w| w.stem).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_words(text: &str) -> Vec<String> {
        words(text).into_iter().map(|w| w.raw).collect()
    }

    fn synonyms(groups: &[(&str, &[&str])]) -> Synonyms {
        let owned: Vec<(&str, Vec<String>)> = groups
            .iter()
            .map(|(c, o)| (*c, o.iter().map(|s| s.to_string()).collect()))
            .collect();
        Synonyms::new(owned.iter().map(|(c, o)| (*c, o.as_slice()))).expect("no conflict")
    }

    fn term_texts(synonyms: &Synonyms, text: &str) -> Vec<String> {
        synonyms
            .terms(&words(&strip_slack_markup(text)))
            .into_iter()
            .map(|t| t.text)
            .collect()
    }

    #[test]
    fn stop_words_are_sorted_and_unique() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn words_split_on_punctuation_and_join_apostrophes() {
        assert_eq!(
            raw_words("Don't the runners' ARM64 jobs on dev.gitlab.org fail?"),
            [
                "dont", "the", "runners", "arm64", "jobs", "on", "dev", "gitlab", "org", "fail"
            ]
        );
        assert_eq!(raw_words("x-compile 32-bit"), ["x", "compile", "32", "bit"]);
        assert!(words("").is_empty());
        assert!(words("?!  ...").is_empty());
    }

    #[test]
    fn slack_markup_is_stripped() {
        assert_eq!(
            raw_words(&strip_slack_markup(
                "<@U024BE7LH> see <https://dev.gitlab.org/jobs/1|this job> in <#C123|g_distribution> <!here>"
            )),
            ["see", "this", "job", "in"]
        );
        assert_eq!(
            raw_words(&strip_slack_markup("bare <https://example.com/x> link")),
            ["bare", "link"]
        );
        assert_eq!(
            raw_words(&strip_slack_markup("builds &amp; jobs :thinking_face:")),
            ["builds", "jobs"]
        );
        // Not emoji: a colon followed by a sentence.
        assert_eq!(
            raw_words(&strip_slack_markup("error: server should be running: yes")),
            ["error", "server", "should", "be", "running", "yes"]
        );
        // Unclosed markup is plain punctuation.
        assert_eq!(raw_words(&strip_slack_markup("a < b")), ["a", "b"]);
    }

    #[test]
    fn stemmer_folds_inflections_consistently() {
        let same = [
            ("builds", "build"),
            ("building", "build"),
            ("compiled", "compile"),
            ("compiling", "compile"),
            ("machines", "machine"),
            ("provisioned", "provisioning"),
            ("stopped", "stop"),
            ("running", "run"),
            ("shutting", "shut"),
            ("entries", "entry"),
            ("notified", "notify"),
            ("timed", "time"),
            ("processes", "process"),
            ("queued", "queue"),
            ("dies", "died"),
            ("automatically", "automatic"),
            ("arbitrarily", "arbitrary"),
            ("randomly", "random"),
            ("replacement", "replaced"),
            ("slowness", "slow"),
        ];
        for (a, b) in same {
            assert_eq!(stem(a), stem(b), "{a} vs {b}");
        }
        for kept in [
            "status", "pass", "arm64", "x86", "pi", "red", "need", "speed", "café", "apply",
        ] {
            assert_eq!(stem(kept), kept);
        }
        assert_ne!(stem("runner"), stem("run"));
        assert_eq!(stem("pending"), "pend");
    }

    #[test]
    fn synonyms_fold_phrases_into_one_term() {
        let synonyms = synonyms(&[
            ("raspberry pi", &["rpi", "pi"]),
            ("cross-compile", &["x-compile", "cross compilation"]),
            ("arm32", &["armhf", "32 bit", "32-bit"]),
            ("log in", &["login", "sign in"]),
        ]);
        assert_eq!(
            term_texts(&synonyms, "EE on a Raspberry Pi?"),
            ["ee", "raspberry_pi"]
        );
        assert_eq!(term_texts(&synonyms, "rpi"), ["raspberry_pi"]);
        assert_eq!(
            term_texts(&synonyms, "x-compiling armhf"),
            ["cross_compil", "arm32"]
        );
        assert_eq!(
            term_texts(&synonyms, "Cross-compiled 32 bit"),
            ["cross_compil", "arm32"]
        );
        assert_eq!(term_texts(&synonyms, "how do I sign in"), ["log_in"]);
        assert_eq!(term_texts(&synonyms, "who can log in to it"), ["log_in"]);
        // A pronoun inside a particle verb.
        assert_eq!(term_texts(&synonyms, "log me in"), ["log_in"]);
        assert_eq!(term_texts(&synonyms, "log me right in"), ["log"]);
        assert_eq!(term_texts(&synonyms, "vms"), term_texts(&synonyms, "vm"));
    }

    #[test]
    fn stop_words_and_single_letters_are_dropped() {
        let synonyms = Synonyms::default();
        assert_eq!(
            term_texts(&synonyms, "Why are my builds pending for 2 hours?"),
            ["build", "pend"]
        );
        assert!(term_texts(&synonyms, "how do I?").is_empty());
    }

    #[test]
    fn conflicting_synonym_groups_are_rejected() {
        let owned = [
            ("machine", vec!["vm".to_owned()]),
            ("server", vec!["vm".to_owned()]),
        ];
        let conflict = Synonyms::new(owned.iter().map(|(c, o)| (*c, o.as_slice())))
            .expect_err("vm is in two groups");
        assert_eq!(
            (conflict.phrase.as_str(), conflict.first.as_str()),
            ("vm", "machine")
        );
    }
}
