//! Matching a question to an entry: BM25F over each entry's fields, then a confidence decision
//! that prefers "I don't know" to a confident wrong answer.
//!
//! Ranking: BM25F, with question variants and keywords weighted above the title and far above
//! the answer body. Generic words ("build", "machine", "arm") occur in most entries, so their
//! IDF is near zero and they neither pick an entry nor make a question look covered.
//!
//! Decision, for the best entry:
//! * question coverage: the share of the question's information (IDF mass, typo matches
//!   discounted) that the entry explains. Words the knowledge base has never seen count against
//!   it: "how do I rebase my *branch*" explains only half.
//! * variant coverage: the share of the entry's best single question, keyword or title that the
//!   question covers. A question must hit the core of one way of asking, not a side word.
//! * both must pass their floor; a long chatty question may instead pass on strong evidence;
//!   an off-topic question (none of the knowledge base's subject words) needs more coverage;
//!   and a near-tie with another acceptable entry is treated as "don't know".
//!
//! The floors were calibrated on the question sets in `tests/faq_matching.rs`, which also
//! reports how the matcher does on questions written after calibration.

use std::collections::{HashMap, HashSet};

use super::kb::Entry;
use super::text::{self, Synonyms, Term};
use super::typo::{MIN_TYPO_LEN, TypoIndex};

/// BM25 term-frequency saturation.
const K1: f64 = 1.2;
/// A match through a corrected typo counts this much of an exact one.
const TYPO_PENALTY: f64 = 0.7;

/// Fields of an entry, with their BM25F weight and length normalisation. Question variants and
/// keywords say what the entry is about; the answer body mentions many side topics.
#[derive(Clone, Copy)]
enum Field {
    Question,
    Keyword,
    Title,
    Answer,
}

impl Field {
    const ALL: [Field; 4] = [Field::Question, Field::Keyword, Field::Title, Field::Answer];

    fn weight(self) -> f64 {
        match self {
            Field::Question | Field::Keyword => 3.0,
            Field::Title => 2.0,
            Field::Answer => 1.0,
        }
    }

    fn length_normalisation(self) -> f64 {
        match self {
            Field::Question => 0.3,
            Field::Keyword | Field::Title => 0.0,
            Field::Answer => 0.5,
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// Questions longer than this are cut: a pasted log must not make matching slow, and the
/// question part of a chat message comes well before this.
const MAX_QUERY_CHARS: usize = 2_000;

const MIN_QUESTION_COVERAGE: f64 = 0.35;
/// A question with none of the knowledge base's subject words (those at least half of the
/// entries use: "arm", "runner", "machine", ...) is more likely off-topic ("why is my laptop so
/// slow", "how do I update my slack status"), so it must be covered better.
const MIN_OFF_TOPIC_QUESTION_COVERAGE: f64 = 0.45;
const MIN_VARIANT_COVERAGE: f64 = 0.65;
/// Long chatty questions carry many words the knowledge base does not know; they still get an
/// answer when they match this much evidence (in units of one exact match of a word only one
/// entry uses) and most of one variant.
const STRONG_EVIDENCE: f64 = 1.6;
/// Below this much evidence a question says too little to answer: "runner", "arm builds".
const MIN_EVIDENCE: f64 = 0.25;
const STRONG_MIN_QUESTION_COVERAGE: f64 = 0.2;
const STRONG_MIN_VARIANT_COVERAGE: f64 = 0.6;
/// When the runner-up would also be accepted and scores within this ratio of the best, the
/// question sits between two entries (often because it is about neither, like "access to the
/// AWS console"), and a coin-flip answer is worse than none.
const AMBIGUOUS_RATIO: f64 = 0.9;

/// A question or keyword or title, as a set of term ids, with its total IDF mass.
#[derive(Debug, Clone)]
struct Variant {
    terms: Vec<usize>,
    mass: f64,
}

#[derive(Debug, Clone)]
pub(super) struct Index {
    /// Entry ids, for the debug log.
    ids: Vec<String>,
    synonyms: Synonyms,
    typos: TypoIndex,
    /// Every stem seen in the entries or the synonym list: such words are never "corrected".
    known_stems: HashSet<String>,
    term_ids: HashMap<String, usize>,
    idf: Vec<f64>,
    /// Term id -> (entry index, BM25F saturation in 0..1).
    postings: Vec<Vec<(usize, f64)>>,
    /// Term id -> whether at least half of the entries (and at least 3) use it: a subject word.
    subject: Vec<bool>,
    variants: Vec<Vec<Variant>>,
    /// IDF of a word exactly one entry contains: the unit of "evidence", and the weight of a
    /// word no entry contains. An unknown word is as likely a paraphrase ("bump the cap") as a
    /// sign of another topic ("rebase my branch"), so it counts like the most specific known
    /// word, not more.
    unique_idf: f64,
}

/// The entry that answers a question, by index, and the match confidence (0..1).
#[derive(Debug, Clone, Copy)]
pub(super) struct Scored {
    pub entry: usize,
    pub confidence: f64,
}

/// What the matcher makes of a question: the answer if it is confident, and the entries
/// closest to it, best first, for when it is not.
#[derive(Debug, Clone)]
pub(super) struct Ranking {
    pub best: Option<Scored>,
    pub closest: Vec<usize>,
}

impl Index {
    pub(super) fn build(entries: &[Entry], synonyms: Synonyms) -> Self {
        let mut typos = TypoIndex::default();
        let mut known_stems = HashSet::new();
        let mut term_ids: HashMap<String, usize> = HashMap::new();
        // Per entry, per field: term id -> count, and the field's length in terms.
        let mut counts: Vec<[HashMap<usize, f64>; 4]> = Vec::with_capacity(entries.len());
        let mut lengths: Vec<[f64; 4]> = Vec::with_capacity(entries.len());
        let mut variant_terms: Vec<Vec<Vec<usize>>> = Vec::with_capacity(entries.len());

        for entry in entries {
            let mut entry_counts: [HashMap<usize, f64>; 4] = Default::default();
            let mut entry_lengths = [0.0; 4];
            let mut entry_variants = Vec::new();
            let answer = text::strip_slack_markup(&entry.answer);
            let texts = entry
                .questions
                .iter()
                .map(|q| (Field::Question, q.as_str()))
                .chain(entry.keywords.iter().map(|k| (Field::Keyword, k.as_str())))
                .chain([
                    (Field::Title, entry.title.as_str()),
                    (Field::Answer, answer.as_str()),
                ]);
            for (field, content) in texts {
                let words = text::words(content);
                for word in &words {
                    if !word.raw.bytes().any(|b| b.is_ascii_digit()) {
                        // A typo of a stop word ("takn") must be dropped like the stop word.
                        let stop = text::is_stop_word(&word.raw) || text::is_stop_word(&word.stem);
                        let target = (!stop).then_some(word.stem.as_str());
                        typos.add(&word.raw, target);
                        typos.add(&word.stem, target);
                    }
                    known_stems.insert(word.stem.clone());
                }
                let mut ids = Vec::new();
                for term in synonyms.terms(&words) {
                    let next_id = term_ids.len();
                    let id = *term_ids.entry(term.text).or_insert(next_id);
                    *entry_counts[field.slot()].entry(id).or_default() += 1.0;
                    entry_lengths[field.slot()] += 1.0;
                    ids.push(id);
                }
                if !matches!(field, Field::Answer) {
                    ids.sort_unstable();
                    ids.dedup();
                    entry_variants.push(ids);
                }
            }
            counts.push(entry_counts);
            lengths.push(entry_lengths);
            variant_terms.push(entry_variants);
        }
        for stem in synonyms.phrase_words() {
            typos.add(stem, Some(stem));
            known_stems.insert(stem.to_owned());
        }
        for stop in text::stop_words() {
            typos.add(stop, None);
        }

        let docs = entries.len() as f64;
        let idf_for = |df: f64| (1.0 + (docs - df + 0.5) / (df + 0.5)).ln();
        let mut df = vec![0.0; term_ids.len()];
        for entry_counts in &counts {
            let in_entry: HashSet<usize> = entry_counts
                .iter()
                .flat_map(|c| c.keys().copied())
                .collect();
            for id in in_entry {
                df[id] += 1.0;
            }
        }
        let idf: Vec<f64> = df.iter().map(|&df| idf_for(df)).collect();
        // In a tiny knowledge base every word is in half of the entries; none is a subject word.
        let subject_df = (docs / 2.0).max(3.0);
        let subject: Vec<bool> = df.iter().map(|&df| df >= subject_df).collect();

        let mut average = [0.0; 4];
        for entry_lengths in &lengths {
            for (sum, len) in average.iter_mut().zip(entry_lengths) {
                *sum += len / docs.max(1.0);
            }
        }
        let mut postings = vec![Vec::new(); term_ids.len()];
        for (entry, (entry_counts, entry_lengths)) in counts.iter().zip(&lengths).enumerate() {
            let mut weighted: HashMap<usize, f64> = HashMap::new();
            for field in Field::ALL {
                let b = field.length_normalisation();
                let relative = if average[field.slot()] > 0.0 {
                    entry_lengths[field.slot()] / average[field.slot()]
                } else {
                    1.0
                };
                let norm = (1.0 - b) + b * relative;
                for (&id, &count) in &entry_counts[field.slot()] {
                    *weighted.entry(id).or_default() += field.weight() * count / norm;
                }
            }
            for (id, tf) in weighted {
                postings[id].push((entry, tf / (tf + K1)));
            }
        }
        for list in &mut postings {
            list.sort_unstable_by_key(|&(entry, _)| entry);
        }
        let variants = variant_terms
            .into_iter()
            .map(|entry_variants| {
                entry_variants
                    .into_iter()
                    // A variant made only of subject words ("no runner" is just "runner") is
                    // covered by any message that mentions them, so it says nothing.
                    .filter(|terms| terms.iter().any(|&id| !subject[id]))
                    .map(|terms| {
                        let mass = terms.iter().map(|&id| idf[id]).sum();
                        Variant { terms, mass }
                    })
                    .collect()
            })
            .collect();

        Index {
            ids: entries.iter().map(|e| e.id.clone()).collect(),
            synonyms,
            typos,
            known_stems,
            term_ids,
            idf,
            postings,
            subject,
            variants,
            unique_idf: idf_for(1.0),
        }
    }

    /// The question's terms, with typos corrected against the knowledge base's own words.
    fn query_terms(&self, question: &str) -> Vec<Term> {
        let end = question
            .char_indices()
            .nth(MAX_QUERY_CHARS)
            .map_or(question.len(), |(at, _)| at);
        let mut words = text::words(&text::strip_slack_markup(&question[..end]));
        for word in &mut words {
            let correctable = !text::is_stop_word(&word.raw)
                && !self.known_stems.contains(&word.stem)
                // arm32 vs arm64, 16.5 vs 16.6: one character apart, different meaning.
                && !word.raw.bytes().any(|b| b.is_ascii_digit());
            if !correctable {
                continue;
            }
            // Stems are shorter than words, so one edit changes more of them: "notic" (noticed)
            // is one edit from the abbreviation "notif". Stems need one more letter to be
            // corrected; they catch typos in an inflection the entries do not use.
            let correction = self.typos.correct(&word.raw).or_else(|| {
                (word.stem.chars().count() > MIN_TYPO_LEN)
                    .then(|| self.typos.correct(&word.stem))
                    .flatten()
            });
            match correction {
                Some(Some(stem)) => {
                    word.stem = stem.to_owned();
                    word.fuzzy = true;
                }
                // A misspelt stop word: an empty stem is dropped like one.
                Some(None) => word.stem.clear(),
                None => {}
            }
        }
        self.synonyms.terms(&words)
    }

    /// Ranks the entries for `question`; `closest` holds at most `max_closest` of them.
    pub(super) fn rank(&self, question: &str, max_closest: usize) -> Ranking {
        // Each distinct term once; an exact occurrence beats a typo-corrected one.
        let mut terms: Vec<Term> = Vec::new();
        for term in self.query_terms(question) {
            match terms.iter_mut().find(|t| t.text == term.text) {
                Some(seen) => seen.fuzzy &= term.fuzzy,
                None => terms.push(term),
            }
        }
        // (term id, IDF weight, match factor); unknown words only add to the total.
        let mut known: Vec<(usize, f64, f64)> = Vec::new();
        let mut total = 0.0;
        for term in &terms {
            match self.term_ids.get(&term.text) {
                Some(&id) => {
                    let factor = if term.fuzzy { TYPO_PENALTY } else { 1.0 };
                    known.push((id, self.idf[id], factor));
                    total += self.idf[id];
                }
                // Bare numbers are versions, counts and durations ("17.0", "2 hours"): they say
                // nothing about the topic either way.
                None if term.text.bytes().all(|b| b.is_ascii_digit()) => {}
                None => total += self.unique_idf,
            }
        }
        if known.is_empty() || total <= 0.0 {
            return Ranking {
                best: None,
                closest: Vec::new(),
            };
        }
        let on_topic = known.iter().any(|&(id, _, _)| self.subject[id]);
        let min_question_coverage = if on_topic {
            MIN_QUESTION_COVERAGE
        } else {
            MIN_OFF_TOPIC_QUESTION_COVERAGE
        };

        let mut evidence: HashMap<usize, f64> = HashMap::new();
        for &(id, idf, factor) in &known {
            for &(entry, saturation) in &self.postings[id] {
                *evidence.entry(entry).or_default() += idf * factor * saturation;
            }
        }
        let mut ranked: Vec<Candidate> = evidence
            .into_iter()
            .map(|(entry, evidence)| {
                let (coverage, score) = self.variants[entry]
                    .iter()
                    .map(|v| {
                        let hit: f64 = v
                            .terms
                            .iter()
                            .filter_map(|id| known.iter().find(|k| k.0 == *id))
                            .map(|&(_, idf, factor)| idf * factor)
                            .sum();
                        let coverage = hit / v.mass;
                        // Between variants covered alike, prefer the one that also explains
                        // more of the question: a whole matching question beats a one-word
                        // keyword that happens to appear in it.
                        (coverage, coverage * (0.5 + 0.5 * hit / total))
                    })
                    .fold((0.0, 0.0), |(c, s), (vc, vs)| {
                        (f64::max(c, vc), f64::max(s, vs))
                    });
                Candidate::new(
                    entry,
                    evidence / self.unique_idf,
                    evidence / total,
                    coverage,
                    score,
                    min_question_coverage,
                )
            })
            .collect();
        // Entries that share only answer-body words with the question have no confidence;
        // evidence still orders them, so the closest topics are never picked by file order.
        ranked.sort_by(|a, b| {
            b.confidence
                .total_cmp(&a.confidence)
                .then_with(|| b.evidence.total_cmp(&a.evidence))
                .then_with(|| a.entry.cmp(&b.entry))
        });
        let closest = ranked.iter().take(max_closest).map(|c| c.entry).collect();
        let Some(best) = ranked.first() else {
            return Ranking {
                best: None,
                closest,
            };
        };
        let ambiguous = ranked.get(1).is_some_and(|second| {
            second.accepted && second.confidence >= AMBIGUOUS_RATIO * best.confidence
        });
        tracing::debug!(
            best = self.ids.get(best.entry).map(String::as_str),
            confidence = best.confidence,
            question_coverage = best.question_coverage,
            variant_coverage = best.variant_coverage,
            evidence = best.evidence,
            accepted = best.accepted,
            ambiguous,
            on_topic,
            runner_up = ranked.get(1).map(|c| c.confidence),
            "faq match"
        );
        Ranking {
            best: (best.accepted && !ambiguous).then_some(Scored {
                entry: best.entry,
                confidence: best.confidence,
            }),
            closest,
        }
    }
}

struct Candidate {
    entry: usize,
    /// Evidence in units of one exact match of a word only one entry uses.
    evidence: f64,
    question_coverage: f64,
    variant_coverage: f64,
    confidence: f64,
    accepted: bool,
}

impl Candidate {
    fn new(
        entry: usize,
        evidence: f64,
        question_coverage: f64,
        variant_coverage: f64,
        variant_score: f64,
        min_question_coverage: f64,
    ) -> Self {
        let plain =
            question_coverage >= min_question_coverage && variant_coverage >= MIN_VARIANT_COVERAGE;
        let strong = evidence >= STRONG_EVIDENCE
            && question_coverage >= STRONG_MIN_QUESTION_COVERAGE
            && variant_coverage >= STRONG_MIN_VARIANT_COVERAGE;
        let informative = evidence >= MIN_EVIDENCE;
        Candidate {
            entry,
            evidence,
            question_coverage,
            variant_coverage,
            confidence: (question_coverage * variant_score).sqrt(),
            accepted: informative && (plain || strong),
        }
    }
}
