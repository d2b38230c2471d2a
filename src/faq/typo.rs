//! Typo tolerance: finds the known word within one edit (insertion, deletion, substitution or
//! swap of two neighbours) of a word the knowledge base does not know.
//!
//! Lookups use a deletion index (the SymSpell idea): two words are within one such edit only if
//! they share a "delete at most one character" variant, so a lookup is a few hash probes instead
//! of a scan of the vocabulary. Candidates are then confirmed with the real distance.

use std::collections::HashMap;

/// Shorter words are never corrected: at that length one edit turns most words into others.
pub(super) const MIN_TYPO_LEN: usize = 5;

#[derive(Debug, Clone, Default)]
pub(super) struct TypoIndex {
    /// Known words, with how often they occur (to prefer the common reading on ties) and what
    /// they stand for (a stem; `None` for a stop word).
    known: Vec<Known>,
    /// Delete-at-most-one variant -> indexes into `known`.
    variants: HashMap<String, Vec<usize>>,
}

#[derive(Debug, Clone)]
struct Known {
    word: Vec<char>,
    count: usize,
    target: Option<String>,
}

impl TypoIndex {
    /// Adds a known word that stands for `target` (`None`: a stop word).
    pub(super) fn add(&mut self, word: &str, target: Option<&str>) {
        let chars: Vec<char> = word.chars().collect();
        // A 4-letter word is one insertion away from a 5-letter typo.
        if chars.len() < MIN_TYPO_LEN - 1 {
            return;
        }
        if let Some(&index) = self
            .variants
            .get(word)
            .and_then(|ids| ids.iter().find(|&&id| self.known[id].word == chars))
        {
            self.known[index].count += 1;
            return;
        }
        let index = self.known.len();
        for variant in delete_variants(&chars) {
            self.variants.entry(variant).or_default().push(index);
        }
        self.known.push(Known {
            word: chars,
            count: 1,
            target: target.map(str::to_owned),
        });
    }

    /// The best known word within one edit of `word`: `Some(target)` where target is the stem
    /// it stands for (`None` for a stop word). Ties go to the word seen most often, then to the
    /// alphabetically first, so the result does not depend on hash order.
    pub(super) fn correct(&self, word: &str) -> Option<Option<&str>> {
        let chars: Vec<char> = word.chars().collect();
        if chars.len() < MIN_TYPO_LEN {
            return None;
        }
        let mut best: Option<&Known> = None;
        for variant in delete_variants(&chars) {
            for &id in self.variants.get(&variant).into_iter().flatten() {
                let candidate = &self.known[id];
                if candidate.word == chars || !within_one_edit(&chars, &candidate.word) {
                    continue;
                }
                let better = best.is_none_or(|b| {
                    (candidate.count, std::cmp::Reverse(&candidate.word))
                        > (b.count, std::cmp::Reverse(&b.word))
                });
                if better {
                    best = Some(candidate);
                }
            }
        }
        best.map(|known| known.target.as_deref())
    }
}

/// The word itself and every way to delete one character from it.
fn delete_variants(chars: &[char]) -> impl Iterator<Item = String> + '_ {
    std::iter::once(chars.iter().collect()).chain((0..chars.len()).map(|skip| {
        chars
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != skip)
            .map(|(_, c)| c)
            .collect()
    }))
}

/// Optimal string alignment distance <= 1 (Damerau-Levenshtein restricted to one edit).
fn within_one_edit(a: &[char], b: &[char]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    match long.len() - short.len() {
        0 => {
            let diffs: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
            match diffs.as_slice() {
                [] | [_] => true,
                [i, j] => *j == i + 1 && a[*i] == b[*j] && a[*j] == b[*i],
                _ => false,
            }
        }
        1 => {
            let prefix = short.iter().zip(long).take_while(|(x, y)| x == y).count();
            short[prefix..] == long[prefix + 1..]
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_edit(a: &str, b: &str) -> bool {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        within_one_edit(&a, &b)
    }

    #[test]
    fn one_edit_covers_insert_delete_substitute_and_swap() {
        assert!(one_edit("pending", "pendng"));
        assert!(one_edit("scaleway", "scalway"));
        assert!(one_edit("quota", "qouta"));
        assert!(one_edit("access", "acess"));
        assert!(one_edit("status", "statvs"));
        assert!(one_edit("same", "same"));
        assert!(!one_edit("gitaly", "gitlab"));
        assert!(!one_edit("abc", "bca"));
        assert!(!one_edit("rebase", "release"));
        assert!(!one_edit("provision", "provisioning"));
    }

    #[test]
    fn corrects_to_the_nearest_known_word() {
        let mut index = TypoIndex::default();
        index.add("pending", Some("pend"));
        index.add("scaleway", Some("scaleway"));
        index.add("where", None);
        assert_eq!(index.correct("pendng"), Some(Some("pend")));
        assert_eq!(index.correct("scalewya"), Some(Some("scaleway")));
        assert_eq!(index.correct("wehre"), Some(None));
        // Exact words are not "corrected", and short or distant words are left alone.
        assert_eq!(index.correct("pending"), None);
        assert_eq!(index.correct("pend"), None);
        assert_eq!(index.correct("pendingly"), None);
    }

    #[test]
    fn ties_prefer_the_more_common_word() {
        let mut index = TypoIndex::default();
        index.add("slots", Some("slot"));
        index.add("shots", Some("shot"));
        index.add("shots", Some("shot"));
        assert_eq!(index.correct("spots"), Some(Some("shot")));
    }
}
