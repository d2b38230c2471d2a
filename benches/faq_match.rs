//! How long matching one question takes with a 200-entry knowledge base.
//!
//! Run with `cargo bench --bench faq_match`. The knowledge base is the shipped file plus
//! synthetic entries made of pseudo-words (so the vocabulary and the typo index are realistic in
//! size); the questions mix covered, uncovered, misspelt and long chat messages.

use std::hint::black_box;
use std::time::{Duration, Instant};

use armbot::faq::KnowledgeBase;

const ENTRIES: usize = 200;
const ROUNDS: usize = 200;

const QUESTIONS: &[&str] = &[
    "why are my arm builds pending",
    "how do I log into scaleway",
    "where can I see our scaleway quota usage",
    "why don't we cross-compile armhf on arm64?",
    "do we ship EE packages for raspberry pi?",
    "why are my bulds pendng",
    "provisoning of arm builders",
    "how do I request a laptop",
    "what's the status of the 17.0 release",
    "who is on call for gitaly",
    "<@U024BE7LH> where do build failures for stable branches get posted?",
    "Hey team, I noticed that a bunch of my ARM jobs on dev have been sitting in pending for like \
     2 hours now and nothing is picking them up. Is something wrong with the Scaleway runners? \
     what should I do?",
];

/// A small deterministic generator, so every run benchmarks the same knowledge base.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        // n is small; the modulo bias does not matter for a benchmark.
        (self.next() % n as u64) as usize
    }
}

fn pseudo_words(rng: &mut Rng, count: usize) -> Vec<String> {
    const ONSETS: &[&str] = &[
        "b", "c", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "br", "st", "tr",
        "pl",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ou"];
    (0..count)
        .map(|_| {
            let syllables = 2 + rng.below(3);
            (0..syllables)
                .map(|_| {
                    format!(
                        "{}{}",
                        ONSETS[rng.below(ONSETS.len())],
                        VOWELS[rng.below(VOWELS.len())]
                    )
                })
                .collect()
        })
        .collect()
}

fn sentence(rng: &mut Rng, words: &[String], len: usize) -> String {
    (0..len)
        .map(|_| words[rng.below(words.len())].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn knowledge_base_toml() -> String {
    let mut toml = String::from(include_str!("../faq/faq.toml"));
    let builtin = KnowledgeBase::builtin().entries().len();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let words = pseudo_words(&mut rng, 3_000);
    for n in builtin..ENTRIES {
        let questions: Vec<String> = (0..5)
            .map(|_| {
                let len = 6 + rng.below(4);
                format!("{:?}", sentence(&mut rng, &words, len))
            })
            .collect();
        let keywords: Vec<String> = (0..5)
            .map(|_| {
                let len = 1 + rng.below(2);
                format!("{:?}", sentence(&mut rng, &words, len))
            })
            .collect();
        toml.push_str(&format!(
            "\n[[entry]]\nid = \"synthetic-{n}\"\ntitle = {:?}\nquestions = [{}]\nkeywords = [{}]\nanswer = {:?}\nlink = \"https://example.com/{n}\"\n",
            sentence(&mut rng, &words, 5),
            questions.join(", "),
            keywords.join(", "),
            sentence(&mut rng, &words, 80),
        ));
    }
    toml
}

fn main() {
    let toml = knowledge_base_toml();
    let started = Instant::now();
    let kb = match KnowledgeBase::from_toml_str(&toml) {
        Ok(kb) => kb,
        Err(error) => {
            eprintln!("the benchmark knowledge base is invalid: {error}");
            std::process::exit(1);
        }
    };
    let build = started.elapsed();
    assert_eq!(kb.entries().len(), ENTRIES);

    for question in QUESTIONS {
        black_box(kb.answer(black_box(question)));
    }
    let mut times: Vec<Duration> = Vec::with_capacity(ROUNDS * QUESTIONS.len());
    for _ in 0..ROUNDS {
        for question in QUESTIONS {
            let started = Instant::now();
            black_box(kb.answer(black_box(question)));
            times.push(started.elapsed());
        }
    }
    times.sort_unstable();
    let total: Duration = times.iter().sum();
    let at = |fraction: f64| times[((times.len() - 1) as f64 * fraction) as usize];
    println!("faq_match: {ENTRIES} entries, index built in {build:.2?}");
    println!(
        "faq_match: {} questions answered: mean {:.1?}, median {:.1?}, p99 {:.1?}, max {:.1?}",
        times.len(),
        total / times.len() as u32,
        at(0.5),
        at(0.99),
        at(1.0),
    );
}
