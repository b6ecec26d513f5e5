//! Names people type: the nearest known name to a misspelt one, for "did you mean"
//! in rule checks, imports and the API.

/// Edit distance between two names (they are short): insertions, deletions,
/// substitutions and swaps of two neighbouring letters (`emial` is one edit from
/// `email`).
pub fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The known name nearest to `name`, when it is near enough to be a typo of it.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_names_are_typos_within_a_third_of_the_length() {
        let known = ["overdue_total", "overdue", "overdue_between", "priority"];
        assert_eq!(nearest("overdue_totl", known), Some("overdue_total"));
        assert_eq!(nearest("overdue_betwen", known), Some("overdue_between"));
        assert_eq!(nearest("priorty", known), Some("priority"));
        assert_eq!(nearest("xyz", known), None);
    }
}
